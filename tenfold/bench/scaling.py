"""Benchmark ``scaling``: 1 and 2 local workers, and what one all-reduce costs per step (report only).

Two parts, both report only (no goals):

* **measured** — steps/s and examples/s of the trainer's default model (the small ResNet
  of ``recipes/default.yaml``, its optimizer, balanced digits) on 1 worker and on 2 worker
  processes on 127.0.0.1 under ``tf.distribute.MultiWorkerMirroredStrategy`` (``TF_CONFIG``
  written for each, free ports), at the same **global** batch (the recipe's 32, so 16 per
  replica on 2 workers). Each worker runs a hand-written ``strategy.run`` loop (forward,
  ``tf.nn.compute_average_loss`` over the global batch, gradients, ``optimizer.apply``, which
  all-reduces them) on constant batches of its own shard of the digits: this times compute
  and the collective, not the input pipeline. On a machine with few cores the two processes
  share them, so 2 workers cannot be faster here: the figure says what a 2-worker run costs,
  not what a cluster gives.
* **model** — ring all-reduce time per step, ``2 (n − 1) / n × bytes / bandwidth``
  (:func:`ring_allreduce_seconds`), from the gradient bytes (:func:`gradient_bytes`: the
  trainable variables' sizes × their dtype's bytes) of the default model,
  ``keras.applications.ResNet50`` (``weights=None``, 1000 classes) and the 6-block
  ``MultiHeadAttention`` encoder of :mod:`tenfold.bench.models`, over 10 and 100 Gb/s links
  for 2, 8 and 64 workers, next to each model's single-device training-step time measured on
  this machine, so the ratio communication / compute shows where communication dominates.

``--quick`` runs fewer steps and times ResNet50 at 64×64 and a 2-block encoder (d=128,
sequence 32); the gradient bytes of ResNet50 do not depend on the input size.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold import _validate
from tenfold._tf import tensorflow
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    benchmark,
    digit_images,
    figure,
    hline,
    interleave,
    line,
    train_step,
    value_row,
)
from tenfold.bench.models import encoder
from tenfold.bench.trainer import balanced_recipe
from tenfold.train.model import build_model
from tenfold.train.optimization import build_optimizer

LINKS_GBPS = (10, 100)
WORKERS = (2, 8, 64)
PLOT_WORKERS = (2, 4, 8, 16, 32, 64)
DIGITS_SHAPE = (8, 8, 1)
WORKER_TIMEOUT_S = {True: 240, False: 600}  # quick, full: a bound on a stuck worker, not a budget
MB = 1e6
TRAIN_EPOCHS = 10  # of the tenfold train rows (full mode)


def ring_allreduce_seconds(nbytes: float, workers: int, gbps: float) -> float:
    """Seconds of one ring all-reduce of ``nbytes`` over ``workers`` at ``gbps`` Gb/s per link.

    A ring all-reduce (reduce-scatter then all-gather) sends and receives
    ``2 (n − 1) / n × bytes`` per worker (Patarasuk & Yuan 2009, "Bandwidth optimal
    all-reduce algorithms for clusters of workstations"); this is that volume over the link's
    bandwidth, the bandwidth term only: no latency term (``2 (n − 1)`` messages), no overlap
    with the backward pass, no compression.

    Example (100 MB, 2 workers, 10 Gb/s: 1 × 100e6 × 8 / 10e9):
    >>> round(ring_allreduce_seconds(100e6, 2, 10), 6)
    0.08
    """
    nbytes = _validate.non_negative("nbytes", nbytes)
    workers = _validate.integer("workers", workers, low=1)
    gbps = _validate.positive("gbps", gbps)
    return 2 * (workers - 1) / workers * nbytes * 8 / (gbps * 1e9)


def gradient_bytes(model: keras.Model) -> int:
    """Bytes of one gradient of ``model``: its trainable variables' sizes × their dtype's bytes.

    Example:
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> gradient_bytes(m)  # (3 × 2 + 2) float32
    32
    """
    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.trainable_variables))


# --- measured: 1 and 2 local workers -------------------------------------------------------


def _default_model() -> keras.Model:
    return build_model(balanced_recipe(1).model, DIGITS_SHAPE, 10)


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One worker's timing: a MultiWorkerMirroredStrategy from ``TF_CONFIG`` when
    ``spec["workers"] > 1`` (each in its own process), the default strategy otherwise."""
    tf = tensorflow("the scaling benchmark's workers")
    multi = spec["workers"] > 1
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if multi else tf.distribute.get_strategy()
    recipe = balanced_recipe(1)
    keras.utils.set_random_seed(recipe.seed)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # whatever an earlier benchmark left in this process
    try:
        return _timed(spec, strategy, recipe, tf)
    finally:
        keras.config.set_dtype_policy(policy)


def _timed(spec: dict[str, Any], strategy: Any, recipe: Any, tf: Any) -> dict[str, Any]:
    workers, index, global_batch = spec["workers"], spec["index"], spec["global_batch"]
    with strategy.scope():
        model = _default_model()
        optimizer = build_optimizer(recipe.optimizer, recipe.agc, recipe.optimizer.learning_rate, model=model)
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    x, y = digit_images()
    local = global_batch // workers
    rng = np.random.default_rng(index)
    shard = np.arange(index, len(x), workers)  # this worker's examples
    batches = [rng.choice(shard, local, replace=False) for _ in range(4)]
    data = [(tf.constant(x[b][..., None]), tf.constant(y[b])) for b in batches]

    def replica_step(xb: Any, yb: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(loss_fn(yb, model(xb, training=True)),
                                              global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function
    def step(xb: Any, yb: Any) -> Any:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, (xb, yb)), axis=None)

    def steps(k: int) -> None:
        for i in range(k):
            loss = step(*data[i % len(data)])
        float(loss)  # blocks until the last step is done

    steps(spec["warmup"])
    rates = []
    for _ in range(spec["rounds"]):
        start = time.perf_counter()
        steps(spec["steps"])
        rates.append(spec["steps"] / (time.perf_counter() - start))
    return {"index": index, "workers": workers, "local_batch": local,
            "replicas": int(strategy.num_replicas_in_sync), "steps_per_second": rates}


def worker_main() -> None:
    """Entry point of a worker process: ``python -c ... SPEC_JSON``; prints its result as JSON."""
    result = _worker(json.loads(sys.argv[1]))
    print("SCALING-RESULT " + json.dumps(result), flush=True)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 (bound together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(hosts: Sequence[str], index: int) -> dict[str, Any]:
    """The ``TF_CONFIG`` of worker ``index`` of a cluster of ``hosts`` (``host:port``).

    Example:
    >>> tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1)["task"]
    {'type': 'worker', 'index': 1}
    """
    return {"cluster": {"worker": list(hosts)}, "task": {"type": "worker", "index": index}}


def _environment(config: dict[str, Any] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "tensorflow"
    if config is not None:
        env["TF_CONFIG"] = json.dumps(config)
    return env


def _launch(commands: list[list[str]], configs: list[dict[str, Any] | None], what: str,
            timeout: float) -> list[str]:
    """Run ``commands`` at once (each with its ``TF_CONFIG``), wait at most ``timeout`` seconds
    for each; their outputs. A failed or late process stops all and raises RuntimeError with
    its last output."""
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=_environment(config)) for cmd, config in zip(commands, configs)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"scaling: {what} did not finish in {timeout:.0f} s") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs):
        if p.returncode != 0:
            tail = "\n".join(out.splitlines()[-15:])
            raise RuntimeError(f"scaling: {what} failed (exit {p.returncode}):\n{tail}")
    return outputs


def _cluster(workers: int) -> list[dict[str, Any] | None]:
    """The ``TF_CONFIG`` of each of ``workers`` processes on 127.0.0.1 (None for one)."""
    if workers == 1:
        return [None]
    hosts = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    return [tf_config(hosts, i) for i in range(workers)]


def run_workers(workers: int, spec: dict[str, Any], *, timeout: float) -> list[dict[str, Any]]:
    """Time the default model's ``strategy.run`` loop (:func:`worker_main`) in ``workers``
    processes (a 127.0.0.1 cluster when more than one); each worker's result."""
    code = "from tenfold.bench.scaling import worker_main; worker_main()"
    commands = [[sys.executable, "-c", code, json.dumps({**spec, "workers": workers, "index": i})]
                for i in range(workers)]
    outputs = _launch(commands, _cluster(workers), f"the loop on {workers} worker(s)", timeout)
    results = []
    for out in outputs:
        lines = [ln for ln in out.splitlines() if ln.startswith("SCALING-RESULT ")]
        if not lines:
            raise RuntimeError(f"scaling: a worker printed no result:\n{out[-2000:]}")
        results.append(json.loads(lines[-1].split(" ", 1)[1]))
    return results


def train_workers(workers: int, out: Path, *, epochs: int, timeout: float) -> dict[str, Any]:
    """``tenfold train tiny`` on ``workers`` processes (``--worker I --workers ...`` on
    127.0.0.1 when more than one) into ``out``; the chief's ``metrics.json`` ``run`` facts."""
    configs = _cluster(workers)
    base = [sys.executable, "-m", "tenfold", "train", "tiny", "--set", f"train.epochs={epochs}",
            "--set", "train.verbose=0", "--out", str(out)]
    commands = []
    for config in configs:
        flags = [] if config is None else [
            "--worker", str(config["task"]["index"]), "--workers", ",".join(config["cluster"]["worker"])]
        commands.append(base + flags)
    # the CLI writes TF_CONFIG from the flags itself
    _launch(commands, [None] * workers, f"tenfold train tiny on {workers} worker(s)", timeout)
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["run"]


def duration(seconds: float) -> str:
    """``seconds`` for a table: milliseconds below one second, seconds above.

    Example:
    >>> duration(0.0249), duration(19.21)
    ('24.9 ms', '19.2 s')
    """
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


# --- model: gradient bytes and single-device step time ------------------------------------


@dataclass
class _Case:
    label: str
    make: Callable[[], keras.Model]
    inputs: np.ndarray
    labels: np.ndarray

    @property
    def batch(self) -> int:
        return len(self.labels)


def _cases(ctx: BenchContext, global_batch: int) -> list[_Case]:
    rng = np.random.default_rng(ctx.seed)
    x, y = digit_images()
    size, batch = (32, 2) if ctx.quick else (224, 8)
    layers, d, seq = (2, 128, 32) if ctx.quick else (6, 256, 128)

    def resnet() -> keras.Model:
        return keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000,
                                           classifier_activation=None)

    return [
        _Case("default model (small ResNet, digits 8×8)", _default_model,
              x[:global_batch, ..., None], y[:global_batch]),
        _Case(f"ResNet50 ({size}×{size})", resnet,
              rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"), (np.arange(batch) % 1000).astype("int32")),
        _Case(f"encoder ({layers}×MHA, d={d}, sequence {seq})", lambda: encoder(layers, d, seq=seq),
              rng.integers(0, 1000, (16, seq)).astype("int32"), (np.arange(16) % 10).astype("int32")),
    ]


def _step_time(case: _Case, ctx: BenchContext) -> dict[str, Any]:
    """Gradient bytes and the median single-device training-step time (SGD, float32)."""
    tf = tensorflow("the scaling benchmark")
    keras.utils.set_random_seed(ctx.seed)
    model = case.make()
    step = train_step(model, keras.optimizers.SGD(0.01))
    x, y = tf.constant(case.inputs), tf.constant(case.labels)
    calls = 1 if "ResNet50" in case.label else 3
    step(x, y)  # traced outside the timed rounds

    def run() -> None:
        for _ in range(calls):
            loss = step(x, y)
        float(loss)

    repeats = 2 if ctx.quick else 5
    seconds = interleave({"step": run}, repeats=repeats, warmup=1)["step"]
    return {"label": case.label, "batch": case.batch, "parameters": int(model.count_params()),
            "gradient_bytes": gradient_bytes(model), "step_seconds": float(np.median(seconds)) / calls}


def _comm_table(measured: list[dict[str, Any]]) -> str:
    head = " | ".join(f"n={n}" for n in WORKERS)
    lines = [
        "Ring all-reduce time per step (bandwidth term) and its ratio to the single-device "
        "step time measured on this CPU (ratio > 1: communication dominates unless it overlaps "
        "the backward pass):",
        "",
        f"| model | gradient | step time on this CPU (batch) | link | {head} |",
        "|---|---|---|---|" + "---|" * len(WORKERS),
    ]
    for m in measured:
        for gbps in LINKS_GBPS:
            cells = []
            for n in WORKERS:
                t = ring_allreduce_seconds(m["gradient_bytes"], n, gbps)
                cells.append(f"{duration(t)} ({t / m['step_seconds']:.2g}×)")
            lines.append(
                f"| {m['label']} | {m['gradient_bytes'] / MB:.3g} MB | {duration(m['step_seconds'])} "
                f"({m['batch']}) | {gbps} Gb/s | {' | '.join(cells)} |")
    return "\n".join(lines)


def _plot(ctx: BenchContext, measured: list[dict[str, Any]]) -> str:
    """Comm time vs workers (dotted: each model's step time here) and the ratio comm / compute."""
    styles = {10: "-", 100: "--"}
    comm, ratio, ratios = [], [], []
    for i, m in enumerate(measured):
        short, color = m["label"].split(" (")[0], f"C{i}"
        for gbps in LINKS_GBPS:
            t = [ring_allreduce_seconds(m["gradient_bytes"], n, gbps) for n in PLOT_WORKERS]
            r = [v / m["step_seconds"] for v in t]
            ratios += r
            comm.append(line(PLOT_WORKERS, t, None, linestyle=styles[gbps], color=color, marker="o"))
            ratio.append(line(PLOT_WORKERS, r, f"{short}, {gbps} Gb/s", linestyle=styles[gbps],
                              color=color, marker="o"))
        comm.append(hline(m["step_seconds"], None, color=color, linestyle=":"))
    ratio.append(hline(1.0, "communication = compute", color="black", linestyle=":"))
    ticks = (list(PLOT_WORKERS), [str(n) for n in PLOT_WORKERS])
    axis = {"value": "log", "base": 2}
    panels = [
        Panel(comm, title="ring all-reduce per step (dotted: step on this CPU)", xlabel="workers",
              ylabel="seconds", xscale=axis, yscale="log", xticks=ticks, legend=None),
        Panel(ratio, title="communication ÷ compute", xlabel="workers", ylabel="ratio",
              xscale=axis, yscale="log", xticks=ticks,
              ylim=(min(ratios) / 1e3, max(max(ratios), 1.0) * 3), legend={"fontsize": 7, "loc": "lower right"}),
    ]
    return figure(ctx.out_dir / "scaling.png", panels, size=(11, 4.5))


def _trainer(ctx: BenchContext, timeout: float) -> tuple[list[dict[str, Any]], list[str]]:
    """``tenfold train tiny`` on 1 and on 2 workers: rows of the chief's fit steps/s."""
    tmp = Path(tempfile.mkdtemp(prefix="tenfold-scaling-"))
    runs = {}
    for workers in (1, 2):
        ctx.log(f"  tenfold train tiny, {workers} worker(s)")
        runs[workers] = train_workers(workers, tmp / f"w{workers}", epochs=TRAIN_EPOCHS, timeout=timeout)
    one, two = runs[1], runs[2]
    batch = int(two["distribute"]["global_batch"])
    rows = [
        value_row(f"tenfold train tiny: fit steps/s ({TRAIN_EPOCHS} epochs)", "1 worker", one["steps_per_second"],
                  "2 workers", two["steps_per_second"], unit="steps/s", lower_is_better=False),
        value_row("tenfold train tiny: fit examples/s", "1 worker", one["steps_per_second"] * batch,
                  "2 workers", two["steps_per_second"] * batch, unit="examples/s", lower_is_better=False),
    ]
    d = two["distribute"]
    note = (f"`tenfold train tiny --set train.epochs={TRAIN_EPOCHS}` (the MLP, global batch {batch}) on 1 worker "
            f"and with `--worker I --workers 127.0.0.1:P0,127.0.0.1:P1` on 2 (strategy {d['strategy']}, "
            f"{d['replicas']} replicas, per-replica batch {d['per_replica_batch']}): steps/s of the chief's "
            f"`model.fit` as metrics.json records it ({one['steps_per_epoch']} steps an epoch), which "
            "includes tracing, validation and the per-epoch checkpoint; one run each.")
    return rows, [note]


def _notes(spec: dict[str, Any], s1: float, s2: float, local_batch: int,
           measured: list[dict[str, Any]]) -> list[str]:
    """The notes, computed from what was measured."""
    global_batch, default = spec["global_batch"], measured[0]
    t2 = ring_allreduce_seconds(default["gradient_bytes"], 2, LINKS_GBPS[0])
    notes = [
        f"Report only, measured on {os.cpu_count()} CPU cores: both worker processes share them, so "
        "2 workers cannot be faster here; on a cluster each worker has its own device.",
        "Measured with a hand-written `strategy.run` loop under tf.distribute.MultiWorkerMirroredStrategy "
        "(2 processes on 127.0.0.1, TF_CONFIG per worker; 1 worker: the default strategy in the bench's "
        "own process), not `tenfold train`: the trainer's default model and optimizer in float32, the "
        f"same global batch {global_batch} ({local_batch} per replica on 2 workers), constant batches "
        f"of each worker's shard of the digits (no input pipeline); {spec['rounds']} rounds of "
        f"{spec['steps']} steps after {spec['warmup']} warm-up steps; 2-worker steps/s is the slower "
        "worker's median.",
        f"2 workers run at {s2 / s1:.2f}× the steps/s of 1 worker at the same global batch "
        f"({s1 * global_batch:.0f} vs {s2 * global_batch:.0f} examples/s).",
        "Communication model: ring all-reduce 2(n−1)/n × gradient bytes ÷ link bandwidth, "
        "bandwidth term only (no latency, no overlap with the backward pass, float32 gradients; "
        "bfloat16 gradients would halve it). Step times are single-device training steps (SGD, "
        "float32) measured on this CPU at the batch shown, not on an accelerator: a device whose "
        "step is shorter than the all-reduce time is communication-bound.",
        f"The default model's gradient is {default['gradient_bytes'] / MB:.3g} MB: "
        f"{duration(t2)} per all-reduce on 2 workers over 10 Gb/s, "
        f"{t2 / default['step_seconds']:.2g}× its step time here.",
    ]
    for m in measured[1:]:
        slow, fast = (ring_allreduce_seconds(m["gradient_bytes"], 64, g) for g in LINKS_GBPS)
        crossing = [n for n in WORKERS
                    if ring_allreduce_seconds(m["gradient_bytes"], n, LINKS_GBPS[0]) > m["step_seconds"]]
        where = (f"over 10 Gb/s it exceeds this CPU's step time from n={crossing[0]}" if crossing
                 else "over 10 Gb/s it stays below this CPU's step time up to n=64")
        notes.append(
            f"{m['label']}: {m['parameters'] / 1e6:.3g} M parameters, {m['gradient_bytes'] / MB:.3g} MB "
            f"of gradient; at n=64 one all-reduce takes {duration(slow)} over 10 Gb/s and "
            f"{duration(fast)} over 100 Gb/s, so a device stepping faster than that is "
            f"communication-bound; {where} ({duration(m['step_seconds'])}, batch {m['batch']}).")
    return notes


@benchmark("scaling", "steps/s on 1 vs 2 local workers; ring all-reduce cost per step vs workers (report only)")
def run(ctx: BenchContext) -> BenchResult:
    global_batch = balanced_recipe(1).data.batch_size
    spec = {"global_batch": global_batch, "warmup": 3,
            "steps": 10 if ctx.quick else 50, "rounds": 2 if ctx.quick else 5}
    timeout = WORKER_TIMEOUT_S[ctx.quick]
    ctx.log("  1 worker (in this process)")
    one = _worker({**spec, "workers": 1, "index": 0})
    ctx.log("  2 workers on 127.0.0.1 (MultiWorkerMirroredStrategy)")
    two = run_workers(2, spec, timeout=timeout)
    s1 = float(np.median(one["steps_per_second"]))
    s2 = float(min(np.median(w["steps_per_second"]) for w in two))  # the slower worker sets the pace
    rounds = spec["rounds"]
    rows = [
        value_row("training steps/s (default model, global batch 32)", "1 worker", s1,
                  "2 workers", s2, unit="steps/s", repeats=rounds, lower_is_better=False),
        value_row("training examples/s (default model)", "1 worker", s1 * global_batch,
                  "2 workers", s2 * global_batch, unit="examples/s", repeats=rounds, lower_is_better=False),
    ]
    trainer_rows, trainer_notes = ([], ["`tenfold train` rows: full mode only (each run takes minutes)."]) \
        if ctx.quick else _trainer(ctx, timeout)
    measured = []
    for case in _cases(ctx, global_batch):
        ctx.log(f"  step time: {case.label}")
        measured.append(_step_time(case, ctx))
    notes = _notes(spec, s1, s2, two[0]["local_batch"], measured) + trainer_notes
    return BenchResult(
        description=(
            "Scale out (report only): steps/s and examples/s of the default model on 1 worker vs 2 "
            "MultiWorkerMirroredStrategy workers on 127.0.0.1, and a ring all-reduce model of the "
            "communication per step for the default model, ResNet50 and an MHA encoder over 10 and "
            "100 Gb/s links (docs/distributed.md)."
        ),
        rows=rows + trainer_rows, tables=[_comm_table(measured)], plots=[_plot(ctx, measured)], notes=notes,
    )
