"""Stage "distribute": where a run trains (recipe ``distribute:``, docs/distributed.md).

``strategy``:

- ``none``: one device.
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local devices (the first
  ``devices`` GPUs; on a machine without GPUs ``devices: N`` splits the CPU into N logical
  devices, which must happen before TensorFlow initializes its devices).
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` from ``TF_CONFIG``
  (``tenfold train --worker I --workers host:port,...`` writes it, :func:`tf_config`).
- ``data_parallel``: ``keras.distribution.DataParallel`` on the JAX backend, over the local
  devices, or across processes through ``keras.distribution.initialize``
  (``coordinator``, ``processes``, ``process_id``).

``data.batch_size`` is the *global* batch: each step splits it over the replicas, so with
``lr_scaling: none`` a run trains as one device would at the same batch (the test suite
checks the final weights to 1e-5). The input pipeline is built whole on every worker (the
same seed, so the same order, re-sampling and echo) and sharded by *data*: worker ``i``
keeps part ``i`` of every global batch (:meth:`Distribution.shard`; under ``data_parallel``
a batch that does not split evenly over the devices, an epoch's last, is padded with
examples of weight 0 and the real ones reweighted, since JAX shards only evenly). Each example is
therefore seen once per epoch across the workers (echo factor times with ``data.echo``),
and the long-tail class counts are those of the whole training split.

Keras 3.15's ``model.fit`` under ``MultiWorkerMirroredStrategy`` fails twice
(keras-team/keras#20585, tensorflow/tensorflow#72388), also with plain Keras layers:

1. ``_maybe_symbolic_build`` all-reduces the first ``(x, y)`` batch,
   ``strategy.reduce("MEAN", batch, axis=None)``, only to learn its shapes; the collective
   strategy's ``reduce`` cannot take that nested structure of ``PerReplica`` values
   ("Attempt to convert a value (PerReplica ...) to a Tensor"). :func:`prepare_model`
   builds from the first local replica's batch instead: the shapes are all it needs.
2. Every step's logs go through ``reduce_per_replica``, which under a multi-worker
   collective strategy calls ``strategy.reduce("MEAN", v, axis=0)`` on the scalar logs
   ("Invalid reduction dimension 0 for input with 0 dimensions"). :func:`prepare_model`
   gives the train and test steps' scalar outputs the shape ``[1]``, so that the reduce is
   the mean over the workers' values: a scalar again. Keras' metric variables are
   sync-on-read, so the logged loss and accuracy are the mean of the workers' shards.

The model and optimizer state are built inside the strategy's scope before ``fit``
(:func:`tenfold.train.build.build` runs in :meth:`Distribution.scope`). Setting
``TENFOLD_KERAS_FIT_WORKAROUND=0`` turns the workaround off (the test suite shows that fit
then fails).

Every worker runs every stage (their collectives must match: fit, the predictions of
evaluation and deploy); only the chief (worker 0) writes the run directory. The other
workers write into their own scratch run directory next to it (:meth:`Distribution.out`,
as ``BackupAndRestore``'s per-worker folders), with their own checkpoints, and remove it
when they finish. On resume the workers agree on the newest epoch all of them hold a
checkpoint of (:meth:`Distribution.agree_checkpoints`, before the run is built: the data start
at that epoch).
"""

from __future__ import annotations

import contextlib
import json
import os
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from tenfold import _validate
from tenfold._tf import tensorflow
from tenfold.train import checkpoints
from tenfold.train.files import write_json_atomic
from tenfold.train.recipe import DistributeConfig, Recipe, RecipeError, with_values

FIT_WORKAROUND_ENV = "TENFOLD_KERAS_FIT_WORKAROUND"
TF_STRATEGIES = ("mirrored", "multi_worker")


def tf_config(worker: int, workers: str | list[str]) -> str:
    """The ``TF_CONFIG`` JSON of worker ``worker`` in a cluster of ``workers`` (``host:port``
    each, comma-separated or a list); worker 0 is the chief.

    Example:
    >>> json.loads(tf_config(1, "10.0.0.1:2222,10.0.0.2:2222"))["task"]
    {'type': 'worker', 'index': 1}
    """
    hosts = [w.strip() for w in workers.split(",")] if isinstance(workers, str) else list(workers)
    for host in hosts:
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise RecipeError(f"--workers: {host!r} is not host:port (e.g. 10.0.0.1:2222); "
                              f"received {','.join(hosts)!r}.")
    if len(set(hosts)) != len(hosts):
        raise RecipeError(f"--workers: each worker needs its own host:port, received {','.join(hosts)!r}.")
    try:
        _validate.integer("--worker", worker, low=0, high=len(hosts) - 1)
    except ValueError as err:
        raise RecipeError(f"{err} (one index per host:port of --workers {','.join(hosts)!r})") from None
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": worker}})


def _read_tf_config() -> tuple[int, int]:
    """(workers, this worker's index) of ``TF_CONFIG``."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise RecipeError(
            "distribute.strategy: multi_worker reads the cluster from the TF_CONFIG environment "
            "variable, which is not set; pass --worker I --workers host:port,host:port to "
            "tenfold train, or set TF_CONFIG (docs/distributed.md).")
    try:
        spec = json.loads(raw)
        workers = len(spec["cluster"]["worker"]) + len(spec["cluster"].get("chief", []))
        task = spec["task"]
        index = int(task["index"]) + (1 if task["type"] == "worker" and spec["cluster"].get("chief") else 0)
        if task["type"] not in ("worker", "chief"):
            raise ValueError(f"task type {task['type']!r} (accepted: worker, chief)")
    except (ValueError, KeyError, TypeError) as err:
        raise RecipeError(f"TF_CONFIG: not a cluster spec tenfold can use ({err}); received {raw!r}.") from None
    return workers, index


@dataclass
class Distribution:
    """The distribution of one run: the strategy, its replicas and this process's place.

    Attributes:
        name: the recipe's ``distribute.strategy``.
        strategy: the ``tf.distribute.Strategy`` (mirrored, multi_worker) or the
            ``keras.distribution.DataParallel`` (data_parallel); None for ``none``.
        replicas: replicas over all workers (the global batch is split into this many).
        workers: worker processes.
        worker: this process's index (0 is the chief, which writes the run directory).
        devices: the devices of the replicas, as named by the engine.
    """

    name: str = "none"
    strategy: Any = None
    replicas: int = 1
    workers: int = 1
    worker: int = 0
    devices: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_chief(self) -> bool:
        return self.worker == 0

    @property
    def uses_tf(self) -> bool:
        return self.name in TF_STRATEGIES

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """The strategy's scope (the model and optimizer must be built in it)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def out(self, out: Path) -> Path:
        """Where this process writes: the run directory (the chief), or a scratch run
        directory of its own next to it (``<out>.worker-I``), removed when it finishes."""
        out = Path(out)
        return out if self.is_chief else out.with_name(f"{out.name}.worker-{self.worker}")

    def per_replica_batch(self, batch: int) -> str:
        """The per-replica batch of global batch ``batch`` ("32" or "32-33")."""
        low, high = batch // self.replicas, -(-batch // self.replicas)
        return str(low) if low == high else f"{low}-{high}"

    def shard(self, dataset: Any) -> Any:
        """``dataset`` as every worker builds it, sharded by data across the workers (worker
        ``i`` keeps part ``i`` of each global batch when Keras distributes it)."""
        if dataset is None or self.name == "none":
            return dataset
        tf = tensorflow("tf.distribute")
        if self.name == "data_parallel":
            return dataset.map(lambda *batch: _padded(tf, self.replicas, *batch))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return dataset.with_options(options)

    def common_epoch(self, epochs: Iterable[int]) -> int:
        """The newest epoch in ``epochs`` (the checkpoints this worker holds) that every
        worker holds (0: none in common). A collective: every worker calls it."""
        have = sorted({int(e) for e in epochs if e > 0}, reverse=True)[:4]
        if self.workers == 1:
            return have[0] if have else 0
        row = have + [-1] * (4 - len(have))
        if self.name == "data_parallel":
            from jax.experimental import multihost_utils

            rows = [list(r) for r in multihost_utils.process_allgather(_int_array(row)).reshape(-1, 4)]
        else:
            tf = tensorflow("tf.distribute")
            local = self.strategy.run(lambda: tf.constant([row], tf.int64))
            rows = self.strategy.gather(local, axis=0).numpy().tolist()
        common = set(rows[0]).intersection(*rows[1:]) - {-1}
        return max(common, default=0)

    def agree_checkpoints(self, directory: Path, recipe_yaml: str, log: Any = print) -> int:
        """Drop from this worker's checkpoint manifest the epochs not every worker holds, so
        that all resume from the newest common epoch (returned; 0: all start afresh). A
        collective with several workers: every worker calls it before building the run."""
        if self.workers == 1:
            return 0
        held = [c for c in checkpoints.read_manifest(directory, recipe_yaml)
                if checkpoints.is_intact(directory, c)]
        agreed = self.common_epoch(c.epoch for c in held)
        kept = [c for c in held if c.epoch <= agreed]
        if len(kept) != len(held):
            log(f"resuming from epoch {agreed}, the newest checkpoint every worker holds "
                f"(this worker had epoch {held[0].epoch})")
            write_json_atomic(directory / checkpoints.MANIFEST, {
                "format": 1, "recipe_hash": checkpoints.recipe_hash(recipe_yaml),
                "checkpoints": [vars(c) for c in kept]})
        return agreed

    def facts(self, recipe: Recipe) -> dict[str, Any]:
        """What ``metrics.json`` records of the distribution."""
        d = recipe.distribute
        return {"strategy": self.name, "replicas": self.replicas, "workers": self.workers,
                "devices": list(self.devices), "global_batch": recipe.data.batch_size,
                "per_replica_batch": self.per_replica_batch(recipe.data.batch_size),
                "lr_scaling": d.lr_scaling, "learning_rate_factor": lr_factor(d, self.replicas)}

    def notes(self, recipe: Recipe) -> list[str]:
        """The report's line on the distribution (none for one device)."""
        if self.name == "none":
            return []
        d, batch = recipe.distribute, recipe.data.batch_size
        factor = lr_factor(d, self.replicas)
        rule = (f"linear scaling: learning rates x{factor:g} (optimizer.learning_rate "
                f"{recipe.optimizer.learning_rate:g} -> {recipe.optimizer.learning_rate * factor:g})"
                if d.lr_scaling == "linear" else "none (as in the recipe)")
        where = (f"{self.workers} workers, " if self.workers > 1 else "") + f"{self.replicas} replicas"
        return [f"distribute: {self.name} ({where}: {', '.join(self.devices)}); global batch {batch}, "
                f"per-replica batch {self.per_replica_batch(batch)}; learning-rate rule: {rule}; "
                f"the chief (worker 0) writes the run directory."]


def _padded(tf: Any, replicas: int, x: Any, y: Any, weights: Any = None) -> Any:
    """A batch padded to a multiple of ``replicas`` examples (JAX shards it evenly or not at
    all): zeros weighted 0, the real examples weighted ``(n + pad) / n``, so that the mean
    over the padded batch is the mean over the real one."""
    n = tf.shape(tf.nest.flatten(y)[0])[0]
    pad = (-n) % replicas

    def grow(t: Any) -> Any:
        return tf.concat([t, tf.zeros(tf.concat([[pad], tf.shape(t)[1:]], 0), t.dtype)], 0)

    share = tf.cast(n + pad, "float32") / tf.cast(n, "float32")
    w = tf.fill([n], share) if weights is None else tf.cast(weights, "float32") * share
    return tf.nest.map_structure(grow, x), tf.nest.map_structure(grow, y), grow(w)


def check_recipe(recipe: Recipe, dist: Distribution) -> None:
    """Refuse what several workers cannot agree on: ``precision.policy: auto`` picks the
    fastest policy by timing it, and timings differ from worker to worker."""
    if dist.workers > 1 and recipe.precision.policy == "auto":
        raise RecipeError(
            f"precision.policy: 'auto' times the candidates on each worker, and {dist.workers} "
            "workers could choose different policies; set one (float32, mixed_bfloat16, "
            "mixed_float16) for a multi-worker run, e.g. the one `tenfold train` chose on one worker.")


def _int_array(row: list[int]) -> Any:
    import numpy as np

    return np.asarray(row, dtype="int64")


def lr_factor(d: DistributeConfig, replicas: int) -> float:
    """The learning-rate factor of ``distribute.lr_scaling`` for ``replicas`` replicas."""
    return float(replicas) if d.lr_scaling == "linear" else 1.0


def scaled_recipe(recipe: Recipe, replicas: int) -> Recipe:
    """``recipe`` with its learning rates (``optimizer.learning_rate``, explicit
    ``schedule.bounds``) times the ``lr_scaling`` factor; itself when the factor is 1."""
    factor = lr_factor(recipe.distribute, replicas)
    if factor == 1.0:
        return recipe
    values: dict[str, Any] = {"optimizer.learning_rate": recipe.optimizer.learning_rate * factor}
    if isinstance(recipe.schedule.bounds, list):
        values["schedule.bounds"] = [b * factor for b in recipe.schedule.bounds]
    return with_values(recipe, values, source="distribute.lr_scaling")


# ---------------------------------------------------------------------------- set-up


def logical_cpus(count: int) -> list[str]:
    """Split the first CPU into ``count`` logical devices; their names.

    Must run before TensorFlow initializes its devices (before any tensor, dataset or
    model exists in the process): afterwards TensorFlow cannot change them, and the error
    says so. Calling it again with the same count is fine.
    """
    tf = tensorflow("distribute.devices")
    cpu = tf.config.list_physical_devices("CPU")[0]
    have = tf.config.get_logical_device_configuration(cpu)
    if not have or len(have) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
        except RuntimeError:
            raise RecipeError(
                f"distribute.devices={count}: TensorFlow initialized its devices before tenfold "
                f"could split the CPU into {count} logical devices (it has "
                f"{len(tf.config.list_logical_devices('CPU'))}); set it at program start, before "
                "anything creates a tensor or a model (tenfold train does), or run in a fresh "
                "process.") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")][:count]


def _backend(strategy: str, needed: str) -> None:
    backend = keras.backend.backend()
    if backend != needed:
        engine = "tf.distribute" if needed == "tensorflow" else "keras.distribution on JAX"
        other = "data_parallel (KERAS_BACKEND=jax)" if needed == "tensorflow" else "mirrored or multi_worker"
        raise RecipeError(
            f"distribute.strategy={strategy!r} runs on {engine}, which needs KERAS_BACKEND={needed}; "
            f"this process runs Keras on {backend!r}. Set KERAS_BACKEND={needed}, or use {other}.")


def _mirrored(d: DistributeConfig) -> Distribution:
    _backend("mirrored", "tensorflow")
    tf = tensorflow("distribute.strategy: mirrored")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if d.devices is not None and d.devices > len(gpus):
            raise RecipeError(f"distribute.devices={d.devices}: this machine has {len(gpus)} GPU(s).")
        devices = [f"/gpu:{i}" for i in range(d.devices or len(gpus))]
    else:
        devices = logical_cpus(d.devices) if d.devices else ["/cpu:0"]
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    return Distribution("mirrored", strategy, strategy.num_replicas_in_sync, 1, 0, tuple(devices))


def _multi_worker(d: DistributeConfig) -> Distribution:
    _backend("multi_worker", "tensorflow")
    workers, index = _read_tf_config()
    tf = tensorflow("distribute.strategy: multi_worker")
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as err:
        raise RecipeError(f"distribute.strategy: multi_worker could not start ({err}); it must be "
                          "created at program start (tenfold train does).") from None
    local = strategy.extended.worker_devices
    return Distribution("multi_worker", strategy, strategy.num_replicas_in_sync, workers, index,
                        tuple(local))


def _data_parallel(d: DistributeConfig) -> Distribution:
    _backend("data_parallel", "jax")
    if d.coordinator is not None:
        keras.distribution.initialize(d.coordinator, d.processes, d.process_id)
    devices = keras.distribution.list_devices()
    if d.devices is not None:
        if d.devices > len(devices):
            raise RecipeError(f"distribute.devices={d.devices}: JAX sees {len(devices)} device(s) "
                              "(CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N).")
        devices = devices[:d.devices]
    strategy = keras.distribution.DataParallel(devices=devices)
    return Distribution("data_parallel", strategy, len(devices), d.processes or 1, d.process_id or 0,
                        tuple(str(x) for x in devices))


def setup(d: DistributeConfig) -> Distribution:
    """The :class:`Distribution` of ``distribute:``; refuses a strategy the backend does
    not run. Call it first in a process: logical CPUs and MultiWorkerMirroredStrategy must
    exist before TensorFlow initializes its devices."""
    if d.strategy == "none":
        return Distribution()
    return {"mirrored": _mirrored, "multi_worker": _multi_worker, "data_parallel": _data_parallel}[d.strategy](d)


@contextlib.contextmanager
def active(dist: Distribution) -> Iterator[None]:
    """Where the run's stages run: for ``data_parallel``, under the Keras distribution
    (the JAX trainer reads it in ``fit``, ``predict`` and when variables are made)."""
    if dist.name == "data_parallel":
        with dist.strategy.scope():
            yield
    else:
        yield


# ---------------------------------------------------------------------------- fit under MWMS


def workaround_enabled() -> bool:
    """Whether :func:`prepare_model` patches Keras (``TENFOLD_KERAS_FIT_WORKAROUND=0``: not)."""
    return os.environ.get(FIT_WORKAROUND_ENV, "1") != "0"


def _local_batch(strategy: Any, iterator: Any) -> Any:
    tf = tensorflow("tf.distribute")
    for _, _, it in iterator:
        batch = next(it)
        return tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0]
            if isinstance(v, tf.distribute.DistributedValues) else v, batch)
    return None


def _vector_logs(step: Any) -> Any:
    tf = tensorflow("tf.distribute")

    def wrapped(data: Any) -> Any:
        return tf.nest.map_structure(
            lambda v: tf.reshape(v, [1]) if getattr(v, "shape", None) is not None and v.shape.rank == 0 else v,
            step(data))

    return wrapped


def prepare_model(model: keras.Model, dist: Distribution) -> keras.Model:
    """Make ``model.fit`` / ``evaluate`` work under ``dist`` (see the module docstring):
    the optimizer's state built in the scope, the first batch built from one local replica,
    scalar step logs reduced over the workers. A no-op without a tf.distribute strategy."""
    if not dist.uses_tf:
        return model
    with dist.scope():
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    if not workaround_enabled():
        return model
    strategy = dist.strategy

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            data_batch = _local_batch(strategy, iterator)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    object.__setattr__(model, "_maybe_symbolic_build", types.MethodType(maybe_symbolic_build, model))
    train_step, test_step = _global_mean(model.train_step), _global_mean(model.test_step)
    if dist.name == "multi_worker":
        train_step, test_step = _vector_logs(train_step), _vector_logs(test_step)
    object.__setattr__(model, "train_step", train_step)
    object.__setattr__(model, "test_step", test_step)
    return model


def _global_mean(step: Any) -> Any:
    """``step`` with each replica's examples weighted ``R·n_r / N`` (``n_r`` its examples,
    ``N`` the global batch, ``R`` the replicas): Keras averages each replica's loss over its
    own examples and divides by ``R``, which weights the examples of a batch split unevenly
    (an epoch's last, partial batch: 53 = 27 + 26) unequally; weighted, the summed
    gradient is that of the mean over the global batch, as on one device."""
    tf = tensorflow("tf.distribute")

    def wrapped(data: Any) -> Any:
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return step(data)
        x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
        n = tf.shape(tf.nest.flatten(y)[0])[0]
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(n, "float32"))
        share = tf.fill([n], tf.cast(n, "float32") * context.num_replicas_in_sync / total)
        weights = share if weights is None else tf.cast(weights, "float32") * share
        return step(keras.utils.pack_x_y_sample_weight(x, y, weights))

    return wrapped
