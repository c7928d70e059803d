"""The GPU check (benchmarks/gpu_check.sh) rehearsed on the CPU, and what it carries to the GPU machine."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402

STEPS = ["environment", "doctor", "cuda-tests", "decode (small shape)", "decode (8B shape, eager)",
         "quantized (small shape)", "batch 1/8/32 (small shape)", "batch 1/8/32 (8B shape)",
         "compiled decode (8B shape)", "quantized 4-bit (8B shape)"]
CUDA_ONLY = {"decode (8B shape, eager)", "batch 1/8/32 (8B shape)", "compiled decode (8B shape)",
             "quantized 4-bit (8B shape)"}


def test_the_cpu_rehearsal_runs_every_step_and_skips_the_cuda_ones_with_the_reason(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check itself runs (benchmarks/gpu_check.sh), not its rehearsal")
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable,
                                                       "TASKCLOCK_GPU_SITE": str(tmp_path / "site")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = {s["step"]: s for s in json.loads((out / "gpu_check.json").read_text())["steps"]}
    assert list(steps) == STEPS
    for name, step in steps.items():
        if name in CUDA_ONLY:
            assert (step["status"], step["reason"]) == ("skipped", gpu_check.NO_CUDA)
        else:
            assert step["status"] == "ok", step
    tests = steps["cuda-tests"]["figures"]
    assert int(tests["tests"]) == int(tests["skipped"]) > 0  # every CUDA test collected, and skipped with its reason
    assert all(case["outcome"] == "skipped" and case["message"] for case in tests["cases"])
    rates = [row["taskclock tok/s"] for row in steps["decode (small shape)"]["figures"]["rows"]]
    assert [row["dtype"] for row in steps["decode (small shape)"]["figures"]["rows"]] == ["float32", "bfloat16"]
    assert all(rate > 0 for rate in rates)
    quantized = steps["quantized (small shape)"]["figures"]["rows"]
    assert [(q["quantization"], q["layers"], q["error"]) for q in quantized] == [("8bit", "Linear8bitLt", ""),
                                                                                 ("4bit", "Linear4bit", "")]
    assert [row["batch"] for row in steps["batch 1/8/32 (small shape)"]["figures"]["rows"]] == [1, 8, 32]
    report = (out / "gpu_check.md").read_text()
    assert all(f"| {name} |" in report for name in STEPS)
    assert sorted(p.name for p in out.iterdir()) == ["doctor.txt", "gpu_check.json", "gpu_check.md", "install.log",
                                                     "pytest.log"]  # what comes back from the device call


def test_a_step_that_fails_is_recorded_and_the_next_one_runs(tmp_path):
    check = gpu_check.Check(tmp_path, budget_s=60, cuda=False)
    check.step("breaks", 0, lambda: 1 / 0)
    check.step("works", 0, lambda: {"rate": 1.5})
    check.step("too long", 120, lambda: {"rate": 2.0})
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [("breaks", "failed"), ("works", "ok"), ("too long", "skipped")]
    assert steps[0]["error"] == "ZeroDivisionError: division by zero" and "time budget" in steps[2]["reason"]
    assert "| works | ok |" in (tmp_path / "gpu_check.md").read_text()


def tracked_bytes() -> int:
    """The working tree that travels with a device call (git's files; CI's clone has nothing else)."""
    files = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=ROOT, check=True).stdout
    return sum(os.path.getsize(ROOT / name) for name in files.decode().split("\0") if name and
               os.path.isfile(ROOT / name))


def test_the_pinned_wheels_fit_the_carry_limit_with_the_working_tree():
    """Offline and exact: each pin names one file by hash and size, which `gpu_wheels.py download` checks."""
    wheels = gpu_wheels.pins()["wheels"]
    total = sum(w["bytes"] for w in wheels) + tracked_bytes()
    assert total < gpu_wheels.CARRY_LIMIT * 0.9, f"{total / 2**20:.1f} MiB would travel"
    assert all(re.fullmatch(r"[0-9a-f]{64}", w["sha256"]) for w in wheels)


def test_each_pinned_wheel_installs_on_the_gpu_machines_python():
    from packaging.tags import Tag
    from packaging.utils import canonicalize_name, parse_wheel_filename

    machine = {Tag(interpreter, abi, platform) for interpreter in ("py3", "cp312")
               for abi in ("none", "abi3", "cp312") for platform in ("any", *gpu_wheels.PLATFORMS)}
    names = []
    for w in gpu_wheels.pins()["wheels"]:
        name, version, _, tags = parse_wheel_filename(w["file"])
        assert tags & machine, w["file"]
        assert w["requirement"] == f"{w['requirement'].split('==')[0]}=={version}"
        names.append(canonicalize_name(name))
    assert len(names) == len(set(names))  # two versions of one package would stop the whole install
    assert {"bitsandbytes", "textual", "gguf", "platformdirs"} <= set(names)
