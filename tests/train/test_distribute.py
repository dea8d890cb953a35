"""`tenfold train` on tf.distribute and keras.distribution (issue 17).

Fast: the recipe section, ``TF_CONFIG`` from ``--worker/--workers``, the refusals (backend,
logical devices too late, no ``TF_CONFIG``), linear learning-rate scaling. Subprocesses
(logical devices and collectives must be set before TensorFlow initializes, and the suite
runs under pytest-xdist): MirroredStrategy on 2 logical CPUs and 2 MultiWorkerMirroredStrategy
workers on 127.0.0.1 train to one device's weights at the same global batch (<= 1e-5
relative, deterministic ops), with EBN and AGC too; the workers see each training example
as often per epoch as one process does (echo included); Keras 3.15's ``fit`` fails without
tenfold's workaround; JAX ``data_parallel`` on 2 host devices; a worker killed mid-run, then
both restarted, finishes with the recipe's epochs and the uninterrupted run's weights.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from tenfold.train import distribute
from tenfold.train.recipe import DistributeConfig, RecipeError, load_recipe

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
       "TF_DETERMINISTIC_OPS": "1"}
ENV.pop("TF_CONFIG", None)
TIMEOUT = 300
# small_resnet with EBN and AGC(SGD): the cross-replica statistics and the clip on the
# all-reduced gradient
EBN_AGC = ["model.name=small_resnet", "model.width=4", "model.blocks=[1]", "model.norm=ebn",
           "agc.clipping=0.05", "optimizer.name=sgd", "optimizer.learning_rate=0.1", "train.epochs=2"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ",".join(f"127.0.0.1:{p}" for p in ports)


def _command(out, sets=(), flags=()):
    args = [sys.executable, "-m", "tenfold", "train", "tiny", "--out", str(out), "--force",
            "--set", "train.verbose=0"]
    for s in sets:
        args += ["--set", s]
    return args + list(flags)


def _train(out, sets=(), env=None):
    done = subprocess.run(_command(out, sets), env=env or ENV, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _workers(argv_of, n=2, env=None, timeout=TIMEOUT):
    """Start ``n`` worker processes (``argv_of(i, cluster)``); their (returncode, output)."""
    cluster = _free_ports(n)
    procs = [subprocess.Popen(argv_of(i, cluster), env=env or ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(n)]
    results = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            results.append((p.returncode, out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _weights(run_dir):
    return keras.saving.load_model(Path(run_dir) / "model.keras").get_weights()


def _assert_same_weights(a, b, tol=1e-5):
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        scale = max(float(np.max(np.abs(x))), 1e-12)
        assert float(np.max(np.abs(x - y))) / scale <= tol, (x.shape, float(np.max(np.abs(x - y))) / scale)


def _metrics(run_dir):
    return json.loads((Path(run_dir) / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    _train(out)
    return out


# ---------------------------------------------------------------------------- in process


def test_recipe_section_defaults_and_refusals():
    assert load_recipe("tiny").distribute == DistributeConfig()
    d = load_recipe("tiny", ["distribute.strategy=mirrored", "distribute.devices=2",
                             "distribute.lr_scaling=linear"]).distribute
    assert (d.strategy, d.devices, d.lr_scaling) == ("mirrored", 2, "linear")
    cases = {
        "distribute.strategy=horovod": "horovod",
        "distribute.devices=2": "applies to mirrored and data_parallel",
        "distribute.devices=0": "devices",
        "distribute.stratgy=mirrored": "Did you mean 'distribute.strategy'",
    }
    for override, message in cases.items():
        with pytest.raises(RecipeError, match=message):
            load_recipe("tiny", [override])
    with pytest.raises(RecipeError, match="go together"):
        load_recipe("tiny", ["distribute.strategy=data_parallel", "distribute.coordinator=10.0.0.1:1234"])
    with pytest.raises(RecipeError, match="reads its cluster from TF_CONFIG"):
        load_recipe("tiny", ["distribute.strategy=multi_worker", "distribute.coordinator=h:1",
                             "distribute.processes=2", "distribute.process_id=0"])
    with pytest.raises(RecipeError, match="must be below"):
        load_recipe("tiny", ["distribute.strategy=data_parallel", "distribute.coordinator=h:1",
                             "distribute.processes=2", "distribute.process_id=2"])
    with pytest.raises(RecipeError, match="host:port"):
        load_recipe("tiny", ["distribute.strategy=data_parallel", "distribute.coordinator=nohost",
                             "distribute.processes=2", "distribute.process_id=0"])


def test_worker_flags_write_tf_config(monkeypatch):
    from tenfold.cli.train import cluster

    monkeypatch.delenv("TF_CONFIG", raising=False)
    tiny = load_recipe("tiny")
    resolved = cluster(tiny, "tiny", [], 1, "127.0.0.1:2001,127.0.0.1:2002")
    assert resolved.distribute.strategy == "multi_worker"
    assert json.loads(os.environ["TF_CONFIG"]) == {
        "cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "task": {"type": "worker", "index": 1}}
    assert cluster(tiny, "tiny", [], None, None) is tiny
    with pytest.raises(RecipeError, match="--worker needs --workers"):
        cluster(tiny, "tiny", [], 0, None)
    with pytest.raises(RecipeError, match="--worker"):
        cluster(tiny, "tiny", [], 2, "a:1,b:2")
    with pytest.raises(RecipeError, match="not host:port"):
        cluster(tiny, "tiny", [], 0, "a:1,b")
    with pytest.raises(RecipeError, match="its own host:port"):
        cluster(tiny, "tiny", [], 0, "a:1,a:1")
    with pytest.raises(RecipeError, match="distribute.strategy='mirrored'"):
        cluster(load_recipe("tiny", ["distribute.strategy=mirrored"]), "tiny",
                ["distribute.strategy=mirrored"], 0, "a:1,b:2")


def test_refusals(monkeypatch):
    with pytest.raises(RecipeError, match="KERAS_BACKEND=jax"):
        distribute.setup(DistributeConfig(strategy="data_parallel"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(RecipeError, match="TF_CONFIG"):
        distribute.setup(DistributeConfig(strategy="multi_worker"))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(RecipeError, match="TF_CONFIG: not a cluster spec"):
        distribute.setup(DistributeConfig(strategy="multi_worker"))
    import tensorflow as tf

    tf.constant(1.0)  # devices initialized: too late to split the CPU
    have = len(tf.config.list_logical_devices("CPU"))
    with pytest.raises(RecipeError, match=f"distribute.devices={have + 1}: TensorFlow initialized"):
        distribute.logical_cpus(have + 1)


def test_linear_scaling_and_notes():
    recipe = load_recipe("tiny", ["distribute.strategy=mirrored", "distribute.lr_scaling=linear",
                                  "schedule.name=cyclical", "schedule.bounds=[0.001,0.004]"])
    scaled = distribute.scaled_recipe(recipe, 4)
    assert scaled.optimizer.learning_rate == pytest.approx(0.04)
    assert scaled.schedule.bounds == pytest.approx([0.004, 0.016])
    assert distribute.scaled_recipe(load_recipe("tiny"), 4) == load_recipe("tiny")
    dist = distribute.Distribution("mirrored", None, 3, 1, 0, ("/cpu:0", "/cpu:1", "/cpu:2"))
    assert dist.per_replica_batch(64) == "21-22" and dist.per_replica_batch(63) == "21"
    (note,) = dist.notes(recipe)
    assert "global batch 64, per-replica batch 21-22" in note and "x3" in note
    assert dist.facts(recipe)["learning_rate_factor"] == 3.0
    assert dist.common_epoch([2, 3]) == 3 and dist.common_epoch([]) == 0
    assert dist.out(Path("/x/run")) == Path("/x/run")
    assert distribute.Distribution(worker=1, workers=2).out(Path("/x/run")) == Path("/x/run.worker-1")
    two = distribute.Distribution("multi_worker", None, 2, 2, 0)
    with pytest.raises(RecipeError, match="precision.policy: 'auto'"):
        distribute.check_recipe(load_recipe("tiny", ["precision.policy=auto"]), two)
    distribute.check_recipe(load_recipe("tiny", ["precision.policy=auto"]), dist)  # one worker: fine


# ---------------------------------------------------------------------------- subprocesses


def test_mirrored_two_logical_cpus_matches_one_device(one_device, tmp_path):
    out = tmp_path / "mirrored"
    _train(out, ["distribute.strategy=mirrored", "distribute.devices=2"])
    _assert_same_weights(one_device, out)
    facts = _metrics(out)["run"]["distribute"]
    assert facts == {**facts, "strategy": "mirrored", "replicas": 2, "workers": 1,
                     "global_batch": 64, "per_replica_batch": "32", "lr_scaling": "none"}
    report = (out / "report.md").read_text()
    assert "per-replica batch 32" in report and "learning-rate rule: none" in report
    a, b = _metrics(one_device)["test"]["plain"], _metrics(out)["test"]["plain"]
    assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-9)


@pytest.mark.slow
def test_mirrored_ebn_agc_matches_one_device(tmp_path):
    _train(tmp_path / "one", EBN_AGC)
    _train(tmp_path / "two", [*EBN_AGC, "distribute.strategy=mirrored", "distribute.devices=2"])
    _assert_same_weights(tmp_path / "one", tmp_path / "two")  # moving statistics included


PROBE = r"""
import hashlib, json, sys
from collections import Counter
from pathlib import Path
import numpy as np
from tenfold.train import distribute
from tenfold.train.build import build
from tenfold.train.recipe import load_recipe
recipe = load_recipe("tiny", json.loads(sys.argv[1]))
dist = distribute.setup(recipe.distribute)
with dist.scope():
    built = build(recipe, Path(sys.argv[2]), lambda s: None)
data = dist.shard(built.train_data)
if dist.strategy is not None:
    data = dist.strategy.experimental_distribute_dataset(data)
epochs, batches = [], iter(data)  # all epochs in one pass, steps_per_epoch batches each
for _ in range(2):
    seen = Counter()
    for _ in range(built.steps_per_epoch):
        x, y = next(batches)
        xs = dist.strategy.experimental_local_results(x) if dist.strategy is not None else [x]
        for part in xs:
            for row in np.asarray(part):
                seen[hashlib.sha1(row.tobytes()).hexdigest()] += 1
    epochs.append(seen)
print("PROBE " + json.dumps({"epochs": epochs, "class_counts": built.data.class_counts}))
"""


def _probe_output(text):
    line = [s for s in text.splitlines() if s.startswith("PROBE ")][-1]
    return json.loads(line[len("PROBE "):])


@pytest.mark.slow  # three processes: ~110 s on 2 shared cores
@pytest.mark.parametrize("echo", [None, 2.0], ids=["plain", "echo2"])
def test_workers_see_each_example_as_one_process_does(tmp_path, echo):
    sets = ["distribute.strategy=none"] + ([f"data.echo.factor={echo}"] if echo else [])
    single = subprocess.run([sys.executable, "-c", PROBE, json.dumps(sets), str(tmp_path / "a")],
                            env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr[-3000:]
    reference = _probe_output(single.stdout)
    mw = [*sets[1:], "distribute.strategy=multi_worker"]

    def argv(i, cluster):
        return [sys.executable, "-c", "import os, sys; from tenfold.train.distribute import tf_config; "
                f"os.environ['TF_CONFIG'] = tf_config({i}, {cluster!r}); exec(sys.argv[3])",
                json.dumps(mw), str(tmp_path / f"w{i}"), PROBE]

    results = _workers(argv)
    for code, text in results:
        assert code == 0, text[-3000:]
    shards = [_probe_output(text) for _, text in results]
    for epoch in range(2):
        union = {}
        for shard in shards:
            for key, n in shard["epochs"][epoch].items():
                union[key] = union.get(key, 0) + n
        assert union == reference["epochs"][epoch]  # the same examples, as often
        assert all(len(s["epochs"][epoch]) < len(union) for s in shards)  # each worker a part
        total = sum(union.values())
        assert total == round(1077 * (echo or 1))  # every example once (echo: factor times)
    for shard in shards:  # long-tail class counts from the whole training split
        assert shard["class_counts"] == reference["class_counts"]


def test_multi_worker_fit_fails_without_the_workaround(tmp_path):
    def argv(i, cluster):
        return _command(tmp_path / "run", ["train.epochs=1"], ["--worker", str(i), "--workers", cluster])

    results = _workers(argv, env={**ENV, distribute.FIT_WORKAROUND_ENV: "0"}, timeout=120)
    assert any(code != 0 and "PerReplica" in text for code, text in results), results[0][1][-2000:]


@pytest.mark.slow
def test_multi_worker_matches_one_device(one_device, tmp_path):
    out = tmp_path / "run"

    def argv(i, cluster):
        return _command(out, flags=["--worker", str(i), "--workers", cluster])

    for code, text in _workers(argv):
        assert code == 0, text[-3000:]
    _assert_same_weights(one_device, out)
    assert _metrics(out)["run"]["distribute"]["workers"] == 2
    a, b = _metrics(one_device)["test"]["plain"], _metrics(out)["test"]["plain"]
    # balanced, per-class and shot accuracy: the workers' predictions gathered over the test split
    assert a["examples"] == b["examples"] == 450
    for key in ("accuracy", "balanced_accuracy"):
        assert a[key] == pytest.approx(b[key], abs=1e-9)
    assert a["per_class_accuracy"] == pytest.approx(b["per_class_accuracy"], abs=1e-9)
    assert a["shots"] == b["shots"]
    assert not (tmp_path / "run.worker-1").exists()  # the scratch run directory is gone
    assert (out / "report.md").exists() and (out / "deploy").is_dir()


@pytest.mark.slow
def test_multi_worker_ebn_agc_matches_one_device(tmp_path):
    _train(tmp_path / "one", EBN_AGC)

    def argv(i, cluster):
        return _command(tmp_path / "run", EBN_AGC, ["--worker", str(i), "--workers", cluster])

    for code, text in _workers(argv):
        assert code == 0, text[-3000:]
    _assert_same_weights(tmp_path / "one", tmp_path / "run")


@pytest.mark.slow
def test_jax_data_parallel_matches_one_device(tmp_path):
    env = {**ENV, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    _train(tmp_path / "one", env=env)
    _train(tmp_path / "two", ["distribute.strategy=data_parallel", "distribute.devices=2"], env=env)
    _assert_same_weights(tmp_path / "one", tmp_path / "two")
    assert _metrics(tmp_path / "two")["run"]["distribute"]["replicas"] == 2


@pytest.mark.slow
def test_killed_worker_then_both_restarted_finishes(one_device, tmp_path):
    out = tmp_path / "run"
    cluster = _free_ports(2)
    argv = [_command(out, flags=["--worker", str(i), "--workers", cluster]) for i in range(2)]
    procs = [subprocess.Popen(a, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for a in argv]
    manifest = tmp_path / "run.worker-1" / "checkpoints" / "manifest.json"
    deadline = time.monotonic() + TIMEOUT
    while not manifest.exists() and time.monotonic() < deadline:  # worker 1 finished epoch 1
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    time.sleep(1.0)
    procs[0].kill()  # the chief waits on the dead worker's collectives
    procs[0].wait()
    assert manifest.exists() and not (out / "metrics.json").exists()

    def restart(i, _):
        return argv[i]

    for code, text in _workers(restart):
        assert code == 0, text[-3000:]
    history = (out / "history.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in history[1:]] == [1, 2, 3]
    assert _metrics(out)["run"]["resumed_from_epoch"] >= 1
    _assert_same_weights(one_device, out)
