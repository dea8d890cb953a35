"""The GPU script's CPU run (issue 16, item 5): ``python -m tenfold.bench.gpu --tiny``.

The GPU machine has JAX but no TensorFlow, so the script runs here in a subprocess with
``KERAS_BACKEND=jax JAX_PLATFORMS=cpu`` and TensorFlow made unimportable (an import hook
that raises ImportError), from this TensorFlow suite. The JSON it writes is then rendered
into a RESULTS.md as its "GPU" section, naming the device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tenfold.bench.harness import render, write_results_md

ROOT = Path(__file__).resolve().parents[2]
# TensorFlow is installed here and absent on the GPU machine: the hook makes it absent here too
NO_TENSORFLOW = """
import runpy, sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("TensorFlow is blocked: the GPU machine has none")
        return None
sys.meta_path.insert(0, NoTensorFlow())
sys.argv = ["tenfold.bench.gpu", *sys.argv[1:]]
try:
    runpy.run_module("tenfold.bench.gpu", run_name="__main__")
except SystemExit as done:
    code = done.code
assert not [m for m in sys.modules if m.split(".")[0] == "tensorflow"], "TensorFlow was imported"
sys.exit(code)
"""


def _tiny(out: Path, *args: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, "--tiny", "--budget", "1200",
                             "--out", str(out), *args],
                            env=env, capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "gpu.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def remat_run(tmp_path_factory) -> dict:
    # one section: two encoder steps compiled (plain, remat sqrt), their memory and times
    return _tiny(tmp_path_factory.mktemp("gpu"), "--only", "encoder-remat")


def test_tiny_run_writes_a_complete_result_without_tensorflow(remat_run):
    r = remat_run
    assert (r["name"], r["title"], r["device"], r["env"]["backend"]) == ("gpu", "GPU", "cpu", "jax")
    assert r["complete"] and r["quick"] and r["failed"] == [] and r["skipped"] == []
    assert list(r["sections_s"]) == ["encoder-remat"]
    assert r["sizes"]["batch"] == 4 and r["sizes"]["seq"] == 16 and r["sizes"]["layers"] == 2
    memory, timing = r["rows"]
    assert "peak memory" in memory["metric"] and memory["goal"] == "<= 0.5" and memory["unit"] == "MiB"
    assert memory["a_median"] > 0 and memory["b_median"] > 0
    assert memory["ratio"] == pytest.approx(memory["b_median"] / memory["a_median"])
    assert r["encoder remat segments"] >= 2  # 2 blocks + embeddings: sqrt cuts it into segments
    assert "step time" in timing["metric"] and timing["repeats"] == r["sizes"]["repeats"]
    assert timing["a_median"] > 0 and timing["b_median"] > 0
    # remat changes memory, not the math: the recomputed model trains, its loss is finite
    assert 0 < r["losses"]["encoder remat sqrt"] < 10
    assert set(r["compile_s"]) == {"encoder float32", "encoder remat sqrt"}


def test_gpu_section_renders_into_results_md_naming_the_device(remat_run, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    gpu = dict(remat_run, device="NVIDIA H200")  # as a GPU run names its device
    (results / "gpu.json").write_text(json.dumps(gpu), encoding="utf-8")
    text = write_results_md(results).read_text(encoding="utf-8")
    assert "\n## GPU\n" in text and "on **NVIDIA H200** (Keras backend jax" in text
    assert "| [gpu](#gpu) (quick) | 0 of 1 |" in text  # the tiny CPU run misses the 0.5× goal
    assert remat_run["rows"][0]["metric"] in text


def test_a_cpu_result_still_renders_its_cpu_and_tensorflow():
    section = render({"name": "demo", "env": {"cpu": "Some CPU", "cpu_count": 2, "tensorflow": "2.21.0"}})
    assert section.startswith("## demo\n") and "on Some CPU (2 cores; flags: n/a), TensorFlow 2.21.0" in section


@pytest.mark.slow  # every section: about 14 compiles of small steps, minutes on 2 loaded cores
def test_tiny_run_measures_every_section(tmp_path):
    r = _tiny(tmp_path)
    assert r["complete"] and r["failed"] == [] and r["skipped"] == []
    assert list(r["sections_s"]) == ["image-precision", "encoder-remat", "encoder-precision", "image-remat",
                                     "optimizers", "configure"]
    metrics = [row["metric"] for row in r["rows"]]
    assert sum("training throughput, mixed_bfloat16" in m for m in metrics) == 2
    # the image model's three policies train; the encoder's float16 dot has no XLA:CPU kernel
    assert "image mixed_float16" in r["compile_s"]
    bf16 = next(row for row in r["rows"] if "mini" in row["metric"] and "mixed_bfloat16" in row["metric"])
    assert bf16["goal"] == ">= 2" and bf16["unit"] == "images/s" and bf16["lower_is_better"] is False
    state = r["optimizer_state_bytes"]
    params = r["parameters"]["encoder"]
    assert 8 * params <= state["Adam"] < 8 * params + 64  # m and v in float32, the step and the rate
    assert state["Adafactor"] < state["Adam"] and state["SM3"] < state["Adam"]
    assert r["configure"]["rule"]["policy"] in ("float32", "mixed_bfloat16")
    assert r["configure"]["report"]["policy"] in ("float32", "mixed_bfloat16", "mixed_float16")
