"""Recomputed segments for any functional Keras model (Chen et al. 2016, √n policy).

References:
    Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost",
    https://arxiv.org/abs/1604.06174 — with n blocks cut into k segments, the forward pass
    keeps k segment boundaries and the backward pass holds one segment's activations at a
    time: memory O(k + n/k), smallest at k ≈ √n, for one extra forward pass. Section 4.1:
    on a general graph, the candidate cuts are the tensors through which every path from
    the inputs to the outputs passes (here: where a topological order of the nodes has a
    single live tensor), and segments are sized by memory cost, not by layer count.

How the graph is read: the model's nodes (layers, ``keras.ops`` operation nodes such as
``x + y``, calls of nested functional / Sequential models, which are inlined) are put in a
topological order. After each node the *live* tensors are those produced so far and still
read later. A position is a **cut point** when exactly one live tensor is left besides the
*side tensors*: the model inputs and what weight-free nodes compute from them alone (a
padding mask that feeds every transformer block). Between two cut points lies a *piece*
(a residual block, a squeeze-excite block, a transformer block). Pieces are grouped into
contiguous segments of near-equal activation bytes; each segment is rebuilt as a keras
Model of its own (its inputs: the boundary tensor and any side tensors it reads) and
wrapped in :class:`~tenfold.remat.Recompute`. The last group stays plain: its backward pass
runs first, while its activations are still there, so recomputing it would save nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
from keras import tree

from tenfold import _validate as check
from tenfold._api import export
from tenfold.remat.recompute import Recompute

_ITEMSIZE = {
    "bool": 1, "int8": 1, "uint8": 1, "float16": 2, "bfloat16": 2, "int16": 2, "uint16": 2,
    "float64": 8, "int64": 8, "uint64": 8, "complex64": 8, "complex128": 16,
}


# ---------------------------------------------------------------- the graph


@dataclass
class _Step:
    """One node of the flattened graph: its operation, its recorded call arguments, the
    keys of the tensors it reads (by ``id`` of the KerasTensor in the arguments) and of
    those it writes."""

    operation: Any
    arguments: Any
    reads: dict[int, int]
    writes: list[int]
    path: str


@dataclass
class _Graph:
    steps: list[_Step] = field(default_factory=list)
    specs: dict[int, Any] = field(default_factory=dict)  # key -> KerasTensor (shape, dtype)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def new_key(self, tensor: Any) -> int:
        key = len(self.specs)
        self.specs[key] = tensor
        return key


def _functional(model: Any) -> Any:
    """The functional graph behind ``model`` (a Functional, or a built Sequential's), or None."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth") and hasattr(
        model, "_inputs_struct"
    ):
        return model
    return None


def _nodes(fn: Any) -> list[Any]:
    """The nodes of a functional graph in a topological order (deepest first)."""
    by_depth = fn._nodes_by_depth
    return [
        node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]
        if node.operation is not None and not node.is_input
    ]


def _inlinable(node: Any) -> tuple[Any, list[Any]] | None:
    """``(graph, flat inputs)`` when the node calls a nested functional model that can be
    replaced by its own nodes: one positional input structure, no ``training``/``mask``
    override, dtypes equal to its Inputs' (so no cast is skipped)."""
    fn = _functional(node.operation)
    if fn is None:
        return None
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if len(args) != 1 or any(value is not None for value in kwargs.values()):
        return None
    flat = tree.flatten(args[0])
    if len(flat) != len(fn.inputs) or any(
        not isinstance(t, keras.KerasTensor) or t.dtype != i.dtype
        for t, i in zip(flat, fn.inputs)
    ):
        return None
    return fn, flat


def _add(graph: _Graph, fn: Any, input_keys: list[int], prefix: str) -> list[int]:
    """Append the steps of functional graph ``fn`` fed with ``input_keys``; its output keys."""
    keys = {id(t): k for t, k in zip(fn.inputs, input_keys)}
    for node in _nodes(fn):
        inline = _inlinable(node)
        if inline is not None:
            inner, flat = inline
            outs = _add(graph, inner, [keys[id(t)] for t in flat],
                        f"{prefix}{node.operation.name}/")
            for tensor, key in zip(node.outputs, outs):
                keys[id(tensor)] = key
            continue
        reads = {id(t): keys[id(t)] for t in node.input_tensors}
        writes = [graph.new_key(t) for t in node.outputs]
        for tensor, key in zip(node.outputs, writes):
            keys[id(tensor)] = key
        graph.steps.append(
            _Step(node.operation, node.arguments, reads, writes, prefix + node.operation.name)
        )
    return [keys[id(t)] for t in fn.outputs]


def _graph(model: Any) -> _Graph:
    fn = _functional(model)
    if fn is None:
        if isinstance(model, keras.Sequential):
            raise ValueError(
                f"model {model.name!r} is a Sequential model that is not built; build it "
                "(call it once, or give it a keras.Input) before remat.apply."
            )
        raise TypeError(
            "model must be a functional or Sequential keras.Model (remat.apply reads its "
            f"graph of layers), received {model!r} of type {type(model).__name__}: a "
            "subclassed model has no graph to read; wrap its blocks with "
            "tenfold.remat.Recompute in its __init__ instead."
        )
    graph = _Graph()
    graph.inputs = [graph.new_key(t) for t in fn.inputs]
    graph.outputs = _add(graph, fn, graph.inputs, "")
    graph.steps = _schedule(graph.steps, graph.inputs)
    return graph


def _schedule(steps: list[_Step], inputs: list[int]) -> list[_Step]:
    """The steps in a topological order that runs a branch as soon as it can run, nearest
    to its end first (Kahn's algorithm, smallest distance to a sink first).

    Keras' own order (by depth) puts every output last, so a side output taken from the
    middle (an auxiliary head) would keep its input alive to the end and hide every cut
    point after it; here the auxiliary head runs as soon as its input exists.
    """
    import heapq

    readers: dict[int, list[int]] = {}
    for i, step in enumerate(steps):
        for k in set(step.reads.values()):
            readers.setdefault(k, []).append(i)
    depth = [0] * len(steps)
    for i in range(len(steps) - 1, -1, -1):  # the given order is topological
        after = [j for k in steps[i].writes for j in readers.get(k, ())]
        depth[i] = 1 + max((depth[j] for j in after), default=-1)
    waiting = [len(set(step.reads.values()) - set(inputs)) for step in steps]
    ready = [(depth[i], i) for i in range(len(steps)) if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[_Step] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(steps[i])
        for k in steps[i].writes:
            for j in readers.get(k, ()):
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, (depth[j], j))
    if len(order) != len(steps):  # pragma: no cover - a Keras graph has no cycles
        raise RuntimeError("remat.apply: the model's graph could not be ordered.")
    return order


# ---------------------------------------------------------------- sizes and cut points


def _tensor_bytes(spec: Any) -> int:
    """Bytes per example of a tensor (its batch axis dropped; unknown axes count as 1)."""
    shape = tuple(spec.shape)[1:]
    size = math.prod(int(d) if d is not None else 1 for d in shape)
    return size * _ITEMSIZE.get(str(spec.dtype), 4)


def _step_bytes(step: _Step, specs: dict[int, Any]) -> int:
    """Activation bytes per example a step keeps for its backward pass (an estimate).

    Its outputs, plus, for a layer built of sub-layers, one output per weighted sub-layer,
    plus the attention scores and probabilities of each MultiHeadAttention inside.
    """
    out = sum(_tensor_bytes(specs[k]) for k in step.writes)
    op = step.operation
    if not isinstance(op, keras.layers.Layer):
        return out
    try:
        inner = list(op._flatten_layers(include_self=False))
    except (AttributeError, TypeError):  # pragma: no cover - very old layer classes
        inner = []
    extra = 0
    for layer in [op, *inner]:
        if isinstance(layer, keras.layers.MultiHeadAttention):
            shape = tuple(specs[step.writes[0]].shape) if step.writes else ()
            seq = int(shape[1]) if len(shape) > 2 and shape[1] is not None else 1
            extra += 2 * int(layer.num_heads) * seq * seq * 4 + 3 * out
    extra += out * sum(
        1 for layer in inner
        if layer.weights and not isinstance(layer, keras.layers.MultiHeadAttention)
    )
    return out + extra


@dataclass
class _Liveness:
    producer: dict[int, int]
    last_read: dict[int, int]
    side: set[int]


def _liveness(graph: _Graph) -> _Liveness:
    producer = {k: -1 for k in graph.inputs}
    last_read: dict[int, int] = {}
    for i, step in enumerate(graph.steps):
        for k in step.writes:
            producer[k] = i
        for k in step.reads.values():
            last_read[k] = i
    side = set(graph.inputs)
    for step in graph.steps:
        op = step.operation
        weightless = not getattr(op, "variables", None)
        if weightless and step.reads and all(k in side for k in step.reads.values()):
            side.update(step.writes)
    return _Liveness(producer, last_read, side)


def _cut_points(graph: _Graph, live: _Liveness) -> list[int]:
    """Step indices after which one tensor (besides side tensors) carries everything on."""
    cuts = []
    alive: set[int] = set(k for k in graph.inputs if live.last_read.get(k, -1) >= 0)
    ending: dict[int, list[int]] = {}
    for k, i in live.last_read.items():
        ending.setdefault(i, []).append(k)
    last = len(graph.steps) - 1
    for i, step in enumerate(graph.steps):
        alive.difference_update(ending.get(i, ()))
        alive.update(k for k in step.writes if live.last_read.get(k, -1) > i)
        if i < last and len(alive - live.side) == 1:
            cuts.append(i)
    return cuts


def balanced_cuts(sizes: Sequence[float], count: int) -> list[int]:
    """Start indices of ``count`` contiguous groups of ``sizes`` with near-equal sums.

    Chen et al. segment by memory cost, not by layer count: a ResNet's early blocks hold
    larger activations than its late ones, so equal-count segments would leave the first
    segment (recomputed whole) as large as the plain model's early stages.

    Example:
    >>> balanced_cuts([1, 1, 1, 1], 2), balanced_cuts([4, 4, 2, 2, 1, 1, 1, 1], 3)
    ([0, 2], [0, 2, 4])
    """
    n = len(sizes)
    if not 1 <= count <= n:
        raise ValueError(f"count must be between 1 and {n}, received {count}.")
    total = float(sum(sizes))
    starts = [0]
    running = 0.0
    for i, size in enumerate(sizes[:-1]):
        running += size
        remaining_cuts = count - len(starts)
        if remaining_cuts == 0:
            break
        # cut after group i when the running sum reaches the next share, keeping enough
        # items for the cuts still to come
        if running >= total * len(starts) / count - 1e-9 or n - (i + 1) == remaining_cuts:
            starts.append(i + 1)
    return starts


def segments_for(policy: str | int | Sequence[str], num_blocks: int) -> int:
    """Number of recomputed segments for ``policy`` over ``num_blocks`` pieces (≈√n).

    Example:
    >>> segments_for("sqrt", 16), segments_for(3, 16)
    (4, 3)
    """
    if isinstance(policy, str):
        check.choice("policy", policy, ("sqrt",))
        return max(1, min(num_blocks, round(math.sqrt(num_blocks))))
    count = check.integer("policy", policy, low=1)
    if count > num_blocks:
        raise ValueError(
            f"policy asks for {count} segments but the model has only {num_blocks} pieces "
            "between its cut points."
        )
    return count


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    """Which steps of the model go into which recomputed segment, and what it should save.

    Attributes:
        segments: per recomputed segment, the names (paths through nested models) of the
            layers and operations in it, in order.
        plain: names of the layers and operations left outside every segment.
        cut_points: names of the nodes after which the graph has a cut point.
        activation_bytes: estimated activation bytes per example of the plain model.
        batch_size: the batch size the two estimates below are for; ``None`` when the
            model's batch dimension is not fixed and none was given: then they are per
            example and leave the weight gradients out.
        plain_bytes: estimated peak bytes of a training step of the plain model
            (activations, and the weight gradients as the backward pass makes them).
        planned_bytes: the same estimate with the segments recomputed.
    """

    segments: list[list[str]]
    plain: list[str]
    cut_points: list[str]
    activation_bytes: int
    batch_size: int | None
    plain_bytes: int
    planned_bytes: int
    groups: list[tuple[int, int, bool]] = field(repr=False, default_factory=list)


@dataclass
class _Costs:
    act: list[float]  # activation bytes of each step, for the batch
    grad: list[float]  # bytes of the gradients of the weights each step owns
    batch: int


def _costs(graph: _Graph, batch: int | None) -> _Costs:
    act = [float(_step_bytes(s, graph.specs)) * (batch or 1) for s in graph.steps]
    grad, seen = [], set()
    for step in graph.steps:
        size = 0
        if batch is not None:
            for v in getattr(step.operation, "trainable_weights", None) or []:
                if id(v) not in seen:
                    seen.add(id(v))
                    size += math.prod(int(d) for d in v.shape) * _ITEMSIZE.get(str(v.dtype), 4)
        grad.append(float(size))
    return _Costs(act, grad, batch or 1)


def _peak(graph: _Graph, live: _Liveness, groups: list[tuple[int, int, bool]], costs: _Costs) -> float:
    """Estimated peak bytes of the backward pass, taken group by group from the last.

    While group g's gradient is taken, these are live: what the groups before it keep
    (a recomputed group its boundary outputs, a plain one all its activations), g's own
    activations (kept, or recomputed now) and the weight gradients of g and of every group
    after it (they are all returned at the end of the step).
    """
    kept, peak = 0.0, 0.0
    grads_after = sum(costs.grad)
    for start, end, recompute in groups:
        inside = sum(costs.act[start:end + 1])
        peak = max(peak, kept + inside + grads_after)
        grads_after -= sum(costs.grad[start:end + 1])
        if recompute:
            kept += costs.batch * sum(
                _tensor_bytes(graph.specs[k]) for k in _group_outputs(graph, live, start, end)
            )
        else:
            kept += inside
    return peak


def _best_groups(pieces: list[tuple[int, int]], costs: _Costs, count: int) -> list[tuple[int, int, bool]]:
    """``count`` recomputed groups of pieces and a plain tail with the smallest estimated
    peak: the largest over groups of (its activations + the weight gradients from it to
    the end), found by dynamic programming over the cut points (boundaries, a small term,
    are left to :func:`_peak`). With the gradients known, early groups come out smaller:
    they are recomputed when nearly every gradient already exists."""
    n = len(pieces)
    pa, pw = [0.0], [0.0]
    for a, b in pieces:
        pa.append(pa[-1] + sum(costs.act[a:b + 1]))
        pw.append(pw[-1] + sum(costs.grad[a:b + 1]))

    def cost(s: int, e: int) -> float:  # pieces s..e as one group
        return pa[e + 1] - pa[s] + pw[n] - pw[s]

    inf = float("inf")
    # best[j][e]: smallest peak of j groups covering pieces 0..e; start[j][e]: its last group's start
    best = [[inf] * n for _ in range(count + 1)]
    start = [[0] * n for _ in range(count + 1)]
    for e in range(n):
        best[1][e] = cost(0, e)
    for j in range(2, count + 1):
        for e in range(j - 1, n):
            for s in range(j - 1, e + 1):
                value = max(best[j - 1][s - 1], cost(s, e))
                if value < best[j][e]:
                    best[j][e], start[j][e] = value, s
    tail = min(range(count, n), key=lambda t: (max(best[count][t - 1], cost(t, n - 1)), t))
    groups = [(pieces[tail][0], pieces[-1][1], False)]
    e = tail - 1
    for j in range(count, 0, -1):
        s = start[j][e] if j > 1 else 0
        groups.insert(0, (pieces[s][0], pieces[e][1], True))
        e = s - 1
    return groups


def _group_inputs(graph: _Graph, live: _Liveness, start: int, end: int) -> list[int]:
    keys: list[int] = []
    for step in graph.steps[start:end + 1]:
        for k in step.reads.values():
            if live.producer[k] < start and k not in keys:
                keys.append(k)
    return keys


def _group_outputs(graph: _Graph, live: _Liveness, start: int, end: int) -> list[int]:
    outputs = set(graph.outputs)
    return [
        k for step in graph.steps[start:end + 1] for k in step.writes
        if live.last_read.get(k, -1) > end or k in outputs
    ]


def _batch(model_inputs: Sequence[Any], batch_size: Any) -> int | None:
    """``batch_size`` checked, else the model's fixed batch dimension, else None."""
    if batch_size is not None:
        batch = check.integer("batch_size", batch_size, low=1)
        if batch > 10**9:
            raise ValueError(f"batch_size must be at most 1,000,000,000, received {batch}.")
        return batch
    dims = {t.shape[0] for t in model_inputs if len(t.shape)}
    if len(dims) == 1 and None not in dims:
        return int(dims.pop())
    return None


def _make_plan(
    model: keras.Model, graph: _Graph, live: _Liveness, policy: Any,
    budget_bytes: Any, batch_size: Any,
) -> Plan:
    steps = graph.steps
    batch = _batch([graph.specs[k] for k in graph.inputs], batch_size)
    costs = _costs(graph, batch)
    cuts = _cut_points(graph, live)
    starts = [0] + [c + 1 for c in cuts]
    pieces = list(zip(starts, [*cuts, len(steps) - 1]))
    n = len(pieces)
    everything = [(0, len(steps) - 1, False)]
    if budget_bytes is not None:
        if not (isinstance(policy, str) and policy == "sqrt"):
            raise ValueError(
                f"give policy or budget_bytes, not both: received policy={policy!r} and "
                f"budget_bytes={budget_bytes!r}."
            )
        budget = check.positive("budget_bytes", budget_bytes)
        if batch is None:
            raise ValueError(
                "budget_bytes needs batch_size: the model's batch dimension is not fixed "
                f"(input shapes {[tuple(graph.specs[k].shape) for k in graph.inputs]}); "
                "pass batch_size=N."
            )
        candidates = [everything] + [_best_groups(pieces, costs, k) for k in range(1, n)]
        estimates = [_peak(graph, live, g, costs) for g in candidates]
        recomputed = [sum(sum(costs.act[a:b + 1]) for a, b, r in g if r) for g in candidates]
        fitting = [i for i, e in enumerate(estimates) if e <= budget]
        if not fitting:
            raise ValueError(
                f"budget_bytes={budget_bytes!r} is below what recomputation can reach for model "
                f"{model.name!r} at batch size {batch}: the smallest estimate is "
                f"{int(min(estimates))} bytes ({n} pieces between cut points)."
            )
        # the fewest recomputations: the least activation bytes run twice
        groups = candidates[min(fitting, key=lambda i: (recomputed[i], estimates[i]))]
    elif isinstance(policy, (list, tuple)):
        groups = _groups_after_names(model, steps, policy)
    else:
        if isinstance(policy, bool) or not isinstance(policy, (str, int)):
            raise TypeError(
                f"policy must be 'sqrt', an int or a list of layer names, received {policy!r} "
                f"of type {type(policy).__name__}."
            )
        if n < 2:
            raise ValueError(
                f"model {model.name!r} has no cut point to segment at: no tensor through which "
                "every path passes between its inputs and outputs (its nodes: "
                f"{[s.path for s in steps][:8]}...). Wrap parts of it with "
                "tenfold.remat.Recompute yourself."
            )
        count = segments_for(policy, n - 1) if isinstance(policy, str) else policy
        count = check.integer("policy", count, low=1)
        if count > n - 1:
            raise ValueError(
                f"policy asks for {count} recomputed segments but model {model.name!r} has "
                f"{n} pieces between its cut points, so at most {n - 1} (the last group "
                "stays plain)."
            )
        groups = _best_groups(pieces, costs, count)
    return Plan(
        segments=[[s.path for s in steps[a:b + 1]] for a, b, r in groups if r],
        plain=[s.path for a, b, r in groups if not r for s in steps[a:b + 1]],
        cut_points=[steps[c].path for c in cuts],
        activation_bytes=int(sum(costs.act) / costs.batch),
        batch_size=batch,
        plain_bytes=int(_peak(graph, live, everything, costs)),
        planned_bytes=int(_peak(graph, live, groups, costs)),
        groups=groups,
    )


def _groups_after_names(model: keras.Model, steps: list[_Step], names: Sequence[str]) -> list[tuple[int, int, bool]]:
    if not names:
        raise ValueError("policy as a list of layer names must not be empty, received [].")
    position: dict[str, int] = {}
    for i, step in enumerate(steps):
        position[step.path] = i
        position.setdefault(step.operation.name, i)
        position[step.operation.name] = max(position[step.operation.name], i)
    ends = []
    for name in names:
        check.string("policy entry", name)
        if name not in position:
            raise ValueError(
                f"policy names layer {name!r}, which is not in model {model.name!r}."
                f"{check.suggest(name, position)} Its layers: {sorted(set(position))[:20]}..."
            )
        ends.append(position[name])
    ends = sorted(set(ends))
    groups = []
    start = 0
    for end in ends:
        groups.append((start, end, True))
        start = end + 1
    if start < len(steps):
        groups.append((start, len(steps) - 1, False))
    return groups


# ---------------------------------------------------------------- rebuilding


def _run(step: _Step, values: dict[int, Any]) -> None:
    tensors = {tid: values[k] for tid, k in step.reads.items()}
    args, kwargs = step.arguments.fill_in(tensors)
    outputs = tree.flatten(step.operation(*args, **kwargs))
    for key, value in zip(step.writes, outputs):
        values[key] = value


def _rebuild(model: keras.Model, graph: _Graph, live: _Liveness, groups: list[tuple[int, int, bool]]) -> keras.Model:
    fn = _functional(model)
    values: dict[int, Any] = dict(zip(graph.inputs, fn.inputs))
    taken = {layer.name for layer in model._flatten_layers(include_self=False)}
    number = 0
    for start, end, recompute in groups:
        if not recompute:
            for step in graph.steps[start:end + 1]:
                _run(step, values)
            continue
        number += 1
        name = f"segment_{number}"
        while name in taken or f"recompute_{number}" in taken:
            name = f"{name}_"
        ins = _group_inputs(graph, live, start, end)
        outs = _group_outputs(graph, live, start, end)
        local: dict[int, Any] = {
            k: keras.Input(batch_shape=graph.specs[k].shape, dtype=graph.specs[k].dtype,
                           name=f"{name}_input_{j}")
            for j, k in enumerate(ins)
        }
        sub_inputs = [local[k] for k in ins]
        for step in graph.steps[start:end + 1]:
            _run(step, local)
        sub = keras.Model(
            sub_inputs[0] if len(ins) == 1 else sub_inputs,
            local[outs[0]] if len(outs) == 1 else [local[k] for k in outs],
            name=name,
        )
        wrapper = Recompute(sub, name=name.replace("segment", "recompute", 1))
        result = wrapper(values[ins[0]] if len(ins) == 1 else [values[k] for k in ins])
        for key, value in zip(outs, tree.flatten(result)):
            values[key] = value
    outputs = [values[k] for k in graph.outputs]
    structure = getattr(fn, "_outputs_struct", None)
    packed = tree.pack_sequence_as(structure, outputs) if structure is not None else outputs
    inputs = getattr(fn, "_inputs_struct", fn.inputs)
    return keras.Model(inputs, packed, name=model.name)


@export("tenfold.remat.plan")
def plan(
    model: keras.Model,
    policy: str | int | Sequence[str] = "sqrt",
    *,
    budget_bytes: int | None = None,
    batch_size: int | None = None,
) -> Plan:
    """The segments :func:`apply` would make, without building them (see :func:`apply`).

    Example:
    >>> i = keras.Input((4,))
    >>> h = keras.layers.Dense(4, name="a")(i)
    >>> h = keras.layers.Dense(4, name="b")(h) + h
    >>> p = plan(keras.Model(i, keras.layers.Dense(2, name="c")(h)), 1)
    >>> p.cut_points
    ['a', 'add']
    >>> p.segments, p.plain  # the smallest estimated peak: [a] recomputed, the rest kept
    ([['a']], ['b', 'add', 'c'])
    """
    graph = _graph(model)
    return _make_plan(model, graph, _liveness(graph), policy, budget_bytes, batch_size)


@export("tenfold.remat.apply")
def apply(
    model: keras.Model,
    policy: str | int | Sequence[str] = "sqrt",
    *,
    budget_bytes: int | None = None,
    batch_size: int | None = None,
) -> keras.Model:
    """A copy of ``model`` whose activations are recomputed segment by segment.

    Works on any functional (or built Sequential) model: residual adds, ``keras.ops``
    nodes, squeeze-excite branches, transformer blocks, nested models (inlined), several
    inputs and outputs. Segments are cut at the graph's cut points (see the module
    docstring); a segment that reads a model input or a mask computed from the inputs gets
    it as an extra input. The result shares the original layers and weights; outputs and
    gradients are the same, BatchNormalization statistics are updated once per step and
    Dropout masks are replayed (see :class:`Recompute`). Compile the returned model.

    Args:
        model: keras.Model. A functional model or a built Sequential.
        policy: ``"sqrt"`` — ≈√n recomputed segments over the n pieces between cut points,
            of near-equal activation bytes; an int — that many recomputed segments; a list
            of layer names — cut after each named layer (a segment ends there; the steps
            after the last name stay plain). In every case the last group stays plain.
        budget_bytes: int. Instead of a policy: the fewest recomputations (the least
            activation bytes run twice) whose estimated peak (activations and weight
            gradients of a training step of ``batch_size`` examples) fits in this budget.
        batch_size: int. The training batch size, when the model's batch dimension is not
            fixed: needed for ``budget_bytes``; with it the segments are also placed
            knowing the weight gradients (see :class:`Plan`), without it by activation
            bytes alone.

    Returns:
        A new functional keras.Model with the same name, inputs and outputs.

    Example:
    >>> model = tenfold.models.small_resnet((8, 8, 1), 10, blocks=(2, 2))
    >>> [l.name for l in apply(model, 2).layers if "recompute" in l.name]
    ['recompute_1', 'recompute_2']
    """
    graph = _graph(model)
    live = _liveness(graph)
    chosen = _make_plan(model, graph, live, policy, budget_bytes, batch_size)
    return _rebuild(model, graph, live, chosen.groups)
