"""Every public constructor refuses bad arguments at construction, naming the argument.

Driven by the registry: for each registered class of the fuzzed kinds, the valid arguments
are those its contract example passes (recorded while the example builds its instance),
plus the defaults of every parameter tenfold's own ``__init__`` signatures declare (those of
a subclass's ``**kwargs`` included, e.g. ``ACBlock``'s ``momentum``). Each parameter is
then tried with NaN, +inf, -inf, -1, 0, a wrong type (``object()``), an unknown string and
an empty list, the others kept valid. Each case must be refused with a ``ValueError`` or
``TypeError`` whose message names the argument, or be listed in :data:`MEANINGFUL` with the
reason it is a legitimate value. A listed case that is refused fails too (the table stays
true), and a class without a contract example needs an entry in :data:`VALID_ARGS`.

Keras' own pass-through keyword arguments (``name``, ``dtype``, ...) are Keras' business
and are not fuzzed (:data:`NOT_FUZZED`). The public functions of the same areas (model
builders, ``data.echo`` / ``resample``, ``precision.configure``, the post-hoc tools) are
fuzzed the same way from the valid calls in :data:`FUNCTION_ARGS`, and so are the model-level
entry points outside the registry (:data:`EXTRA_FUNCTIONS`: ``remat.apply`` / ``plan`` come
from the registry's ``remat`` kind; ``reparam.deploy``, ``reparam.check`` and ``lr_find``),
with a huge int (10**30) among their bad values: each is refused naming the argument, or
works — never a traceback from deep inside Keras or TensorFlow.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import tenfold  # noqa: F401  (registers everything)
from tenfold import registry

FUZZED_KINDS = (
    "layers", "optimizers", "schedules", "losses", "metrics", "callbacks", "models", "data",
    "precision", "longtail", "remat",
)

#: components whose arguments are not fuzzed, with the reason
EXCLUDED: dict[str, str] = {}

#: Keras' own keyword arguments, passed through to Keras unchanged
NOT_FUZZED = ("name", "dtype")

class Fresh:
    """A valid argument built anew for every call (a dataset, a built layer)."""

    def __init__(self, make: Any) -> None:
        self.make = make


def _dataset() -> Any:
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((np.zeros((4, 2), "float32"), np.array([0, 0, 0, 1])))


def _small_model() -> Any:
    """A functional model with cut points and a foldable norm (for remat and reparam)."""
    import keras

    i = keras.Input((4,))
    h = keras.layers.Dense(4, name="a")(i)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dense(4, name="b")(h) + h
    return keras.Model(i, keras.layers.Dense(3, name="c")(h))


def _compiled_model() -> Any:
    model = _small_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


_X = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
_Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])


def _dense() -> Any:
    import keras

    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    return layer


#: valid arguments of the classes without a contract example and of the public functions
VALID_ARGS: dict[str, dict[str, Any]] = {
    "CycleMomentum": {},
    "DeferredReweighting": {"class_counts": [40, 20, 5, 2]},
    "LRFinder": {"min_learning_rate": 1e-5, "max_learning_rate": 1.0, "num_steps": 10},
    "Echo": {"factor": 2},
    "FreshExampleCounter": {},
    "echo": {"factor": 2},
    "resample": {"dataset": Fresh(_dataset), "class_counts": [3, 1], "num_samples": 4},
    "mlp": {"input_shape": (4,), "num_classes": 3, "hidden": [8]},
    "small_resnet": {"input_shape": (8, 8, 1), "num_classes": 3, "width": 4, "blocks": [1]},
    "nf_resnet": {"input_shape": (8, 8, 1), "num_classes": 3, "width": 4, "blocks": [1]},
    "configure": {"policy": "float32", "jit_compile": False},
    "adjust_logits": {"logits": np.zeros((2, 2), "float32"), "class_counts": [3, 1]},
    "tau_normalize": {"model_or_dense": Fresh(_dense)},
    "apply": {"model": Fresh(_small_model), "policy": 1},
    "plan": {"model": Fresh(_small_model), "policy": 1},
    "deploy": {"model": Fresh(_small_model)},
    "float32_outputs": {"model": Fresh(_small_model)},
    "check": {"original": Fresh(_small_model), "deployed": Fresh(_small_model), "x": _X},
    "lr_find": {"model": Fresh(_compiled_model), "data": _X, "y": _Y, "batch_size": 4, "num_steps": 2,
                "min_learning_rate": 1e-4, "max_learning_rate": 1.0},
}


def _extra_functions() -> list[registry.Entry]:
    """Model-level entry points that are not registered components."""
    return [registry.Entry(kind, name, obj, path) for kind, name, obj, path in (
        ("reparam", "deploy", tenfold.reparam.deploy, "tenfold.reparam.deploy"),
        ("reparam", "check", tenfold.reparam.check, "tenfold.reparam.check"),
        ("lr_finder", "lr_find", tenfold.lr_find, "tenfold.lr_find"),
    )]


#: kinds whose functions also get the huge-int case
MODEL_LEVEL_KINDS = ("remat", "reparam", "lr_finder")

#: public functions of the fuzzed kinds that are checked by their own tests instead
NOT_FUZZED_FUNCTIONS: dict[str, str] = {
    "train_step": "takes a model, a loss and an optimizer; tests/precision/test_train_step.py",
    "retrain_classifier": "trains a classifier on every call; tests/longtail/test_posthoc.py",
    "search_tau": "scores a model or logits on data; tests/longtail/test_posthoc.py",
    "peak_memory": "measures a callable on a device; tests/remat/test_peak_memory.py",
    "conv_gradients": "takes no arguments (a self-check of TensorFlow's kernels); tests/precision/test_kernels.py",
}

BAD_VALUES: tuple[tuple[str, Any], ...] = (
    ("nan", math.nan),
    ("+inf", math.inf),
    ("-inf", -math.inf),
    ("-1", -1),
    ("0", 0),
    ("object()", object()),
    ("unknown string", "no-such-value"),
    ("empty list", []),
)

HUGE_INT = ("huge int", 10**30)

_LAST_AXIS = "the last axis (channels-last), the default"
_ZERO_MARGIN = "0 is no margin: plain cross-entropy"
_SEED_ZERO = "0 is a seed like any other"

#: (class, argument, bad-value label) -> why the value is meaningful and accepted
MEANINGFUL: dict[tuple[str, str, str], str] = {
    # layers
    ("FusedBatchNormalization", "axis", "-1"): _LAST_AXIS,
    ("FusedBatchNormalization", "axis", "0"): "axis 0 is a valid (if unusual) feature axis",
    ("FusedBatchNormalization", "momentum", "0"): "0: the moving statistics are the last batch's",
    ("ExtendedBatchNormalization", "axis", "-1"): _LAST_AXIS,
    ("ExtendedBatchNormalization", "axis", "0"): "axis 0 is a valid (if unusual) channel axis",
    ("ExtendedBatchNormalization", "momentum", "0"): "0: the moving statistics are the last batch's",
    ("ACBlock", "momentum", "0"): "0: the branch norms keep the last batch's statistics",
    ("RepVGGBlock", "momentum", "0"): "0: the branch norms keep the last batch's statistics",
    # schedules
    ("CyclicalLearningRate", "initial_learning_rate", "0"): "the lower bound may be 0",
    ("TriangularCyclicalLearningRate", "initial_learning_rate", "0"): "the lower bound may be 0",
    ("Triangular2CyclicalLearningRate", "initial_learning_rate", "0"): "the lower bound may be 0",
    ("ExponentialCyclicalLearningRate", "initial_learning_rate", "0"): "the lower bound may be 0",
    # losses
    ("LogitAdjustedLoss", "tau", "-1"): "tau < 0 subtracts the prior (post-hoc style adjustment)",
    ("LogitAdjustedLoss", "tau", "0"): "tau = 0 is plain cross-entropy",
    ("LDAMLoss", "max_margin", "0"): _ZERO_MARGIN,
    ("ClassBalancedLoss", "beta", "0"): "beta = 0 gives equal weights (plain loss)",
    ("ClassBalancedLoss", "gamma", "0"): "gamma = 0 turns the focal term off",
    # metrics
    ("ShotAccuracy", "few", "0"): "no class is few-shot",
    # callbacks
    ("CycleMomentum", "base_momentum", "0"): "momentum may cycle down to 0",
    ("DeferredReweighting", "start_epoch", "0"): "re-weight from the first epoch",
    ("DeferredReweighting", "start_fraction", "0"): "re-weight from the first epoch",
    ("DeferredReweighting", "beta", "0"): "beta = 0 gives equal weights",
    ("LRFinder", "smoothing", "0"): "0: no smoothing of the loss",
    # functions
    ("mlp", "hidden", "empty list"): "no hidden layer: a linear classifier",
    ("mlp", "dropout", "0"): "no dropout, the default",
    ("Echo", "seed", "0"): _SEED_ZERO,
    ("echo", "seed", "0"): _SEED_ZERO,
    ("resample", "seed", "0"): _SEED_ZERO,
    ("adjust_logits", "tau", "0"): "tau = 0 returns the logits unchanged",
    ("tau_normalize", "tau", "0"): "tau = 0 leaves the classifier unchanged",
    ("Adafactor", "beta_1", "0"): "beta_1 = 0: no momentum slot (the paper's memory-light form)",
    ("SM3", "momentum", "0"): "momentum 0: the sub-linear-memory setting of the paper",
    ("SM3", "epsilon", "0"): "epsilon 0: the paper's rule without damping",
    ("AGC", "exclude", "unknown string"): "a valid regex; matching nothing excludes nothing",
    ("AGC", "exclude", "empty list"): "exclude nothing: clip the classifier too",
    ("lr_find", "max_learning_rate", "huge int"): "a sweep to any finite rate: it stops where the loss diverges",
    ("lr_find", "smoothing", "0"): "0: no smoothing of the loss",
    ("lr_find", "divergence_threshold", "huge int"): "never stop early: sweep all num_steps",
    ("lr_find", "verbose", "0"): "0: silent, the default",
}


@dataclass(frozen=True)
class Case:
    component: str
    argument: str
    label: str


def _own_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Named parameters of tenfold's own ``__init__`` signatures along the MRO.

    A parent's parameters count while the signatures so far take ``**kwargs`` (which pass
    them on); Keras' own classes are not followed.
    """
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if not klass.__module__.startswith("tenfold") or "__init__" not in klass.__dict__:
            continue
        forwards = False
        for p in list(inspect.signature(klass.__dict__["__init__"]).parameters.values())[1:]:
            forwards = forwards or p.kind is p.VAR_KEYWORD
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in params:
                continue
            params[p.name] = p
        if not forwards:
            break
    return params


def _parameters(obj: Any) -> dict[str, inspect.Parameter]:
    if isinstance(obj, type):
        return _own_parameters(obj)
    return {
        p.name: p for p in inspect.signature(obj).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _recorded_arguments(entry: registry.Entry) -> dict[str, Any]:
    """The arguments the contract example passes to the class (by parameter name)."""
    cls = entry.obj
    calls: list[dict[str, Any]] = []
    own = cls.__dict__.get("__init__")
    original = cls.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        if not calls:
            bound = inspect.signature(original).bind(self, *args, **kwargs)
            named = dict(bound.arguments)
            named.pop(next(iter(named)))  # self
            for p in inspect.signature(original).parameters.values():
                if p.kind is p.VAR_KEYWORD:
                    named.update(named.pop(p.name, {}))
                elif p.kind is p.VAR_POSITIONAL:
                    named.pop(p.name, None)
            calls.append(named)
        original(self, *args, **kwargs)

    cls.__init__ = spy
    try:
        entry.example().make()
    finally:
        if own is None:
            del cls.__init__
        else:
            cls.__init__ = own
    return calls[0]


def _valid_arguments(entry: registry.Entry) -> dict[str, Any]:
    cls = entry.obj
    given = dict(VALID_ARGS[entry.name]) if entry.example is None else _recorded_arguments(entry)
    valid = {}
    for name, p in _parameters(cls).items():
        if name in given:
            valid[name] = given[name]
        elif p.default is not p.empty:
            valid[name] = p.default
        else:
            raise AssertionError(f"{entry.path}: no valid value known for {name!r}")
    return valid


def _components() -> list[registry.Entry]:
    out = []
    for kind in FUZZED_KINDS:
        for entry in registry.entries(kind):
            if entry.name not in EXCLUDED and entry.name not in NOT_FUZZED_FUNCTIONS:
                out.append(entry)
    return out + _extra_functions()


COMPONENTS = _components()


def _call(entry: registry.Entry, arguments: dict[str, Any]) -> Any:
    import keras

    policy = keras.config.dtype_policy()
    try:
        return entry.obj(**{k: a.make() if isinstance(a, Fresh) else a for k, a in arguments.items()})
    finally:
        keras.config.set_dtype_policy(policy)  # precision.configure sets the global policy


@functools.cache
def _outcomes(name: str) -> tuple[tuple[Case, str, str], ...]:
    """The cases of the component ``name``, tried once per test session."""
    return tuple(_try(next(e for e in COMPONENTS if e.name == name)))


def _try(entry: registry.Entry) -> list[tuple[Case, str, str]]:
    """Every case of ``entry``: (case, outcome, detail), outcome refused | meaningful | accepted
    | badly refused."""
    valid = _valid_arguments(entry)
    _call(entry, valid)  # the valid arguments themselves construct
    results = []
    for argument in valid:
        if argument in NOT_FUZZED:
            continue
        extra = (HUGE_INT,) if entry.kind in MODEL_LEVEL_KINDS else ()
        for label, value in (*BAD_VALUES, *extra):
            case = Case(entry.name, argument, label)
            try:
                _call(entry, {**valid, argument: value})
            except (ValueError, TypeError) as err:
                named = argument in str(err)
                results.append((case, "refused" if named else "badly refused", str(err)))
            except Exception as err:  # a raw error from inside Keras / TensorFlow  # noqa: BLE001
                results.append((case, "badly refused", f"{type(err).__name__}: {err}"[:300]))
            else:
                outcome = "meaningful" if (entry.name, argument, label) in MEANINGFUL else "accepted"
                results.append((case, outcome, ""))
    return results


def test_components_are_found_and_exclusions_are_real():
    names = {e.name for e in COMPONENTS}
    assert {"FusedBatchNormalization", "WSConv2D", "LDAMLoss", "OneCycle", "LRFinder"} <= names
    registered = {e.name for kind in FUZZED_KINDS for e in registry.entries(kind)}
    assert set(EXCLUDED) <= registered, "an exclusion names no registered component"
    for entry in COMPONENTS:
        assert entry.example is not None or entry.name in VALID_ARGS, (
            f"{entry.path} has neither a contract example nor VALID_ARGS: it cannot be fuzzed"
        )
    assert set(NOT_FUZZED_FUNCTIONS) <= registered


@pytest.mark.parametrize("entry", COMPONENTS, ids=[e.name for e in COMPONENTS])
def test_bad_arguments_are_refused_by_name(entry):
    problems = []
    outcomes = _outcomes(entry.name)
    for case, outcome, detail in outcomes:
        if outcome == "accepted":
            problems.append(f"{case.argument}={case.label}: accepted and not in MEANINGFUL")
        elif outcome == "badly refused":
            problems.append(f"{case.argument}={case.label}: refused without naming it: {detail}")
    stale = [
        key for key in MEANINGFUL
        if key[0] == entry.name
        and any((c.argument, c.label) == key[1:] and o != "meaningful" for c, o, _ in outcomes)
    ]
    problems += [f"MEANINGFUL lists {key} but it is refused" for key in stale]
    assert not problems, f"{entry.path}:\n" + "\n".join(problems)


def test_figures(capsys):
    """Print the figures: cases tried / refused with a named message / listed as meaningful."""
    rows: dict[str, list[int]] = {}
    for entry in COMPONENTS:
        row = rows.setdefault(entry.kind, [0, 0, 0])
        for _, outcome, _ in _outcomes(entry.name):
            row[0] += 1
            row[1] += outcome == "refused"
            row[2] += outcome == "meaningful"
    tried, refused, meaningful = (sum(r[i] for r in rows.values()) for i in range(3))
    with capsys.disabled():
        print(
            f"\nfuzz: {len(COMPONENTS)} constructors and functions, {tried} cases tried, {refused} "
            f"refused with a named message, {meaningful} listed as meaningful; "
            f"{len(EXCLUDED)} components excluded ({', '.join(EXCLUDED)})"
        )
        for kind, (t, r, m) in sorted(rows.items()):
            print(f"  {kind:<10} {t:5d} tried {r:5d} refused {m:3d} meaningful")
    assert tried == refused + meaningful
    assert len(MEANINGFUL) == meaningful
