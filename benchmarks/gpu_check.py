"""The GPU check: every figure and failure of a first GPU run in one call, within a time budget.

Run by benchmarks/gpu_check.sh (which installs the carried wheels first). Each step is recorded the moment it
ends, as ok (with its figures), failed (with its error) or skipped (with the reason), in OUT/gpu_check.json and
OUT/gpu_check.md, so a run cut short still leaves everything it measured. Steps, most wanted first:

  environment   torch, CUDA, the card and its memory, the library versions
  doctor        `taskclock doctor`: which parts see the GPU
  cuda-tests    `pytest -m cuda tests/test_gpu.py` (counts, and each failure's message)
  decode        transformers FP16 and BF16 decode, plain generate() against taskclock's stream, batch 1, on the
                SmolLM2-135M and Llama-3-8B shapes (random weights); compiled on the small shape
  quantized     bitsandbytes 8-bit and 4-bit through taskclock's backend on the SmolLM2 shape
  batch         batch 1, 8 and 32 through `HFModel.stream_batch`: aggregate tok/s and mean TTFT
  8b-extras     compiled decode and bitsandbytes 4-bit on the 8B shape, if time is left

Without CUDA it is a rehearsal: the same code runs on a tiny shape on the CPU (FP32/BF16), the CUDA-only steps
are skipped with the reason (tests/test_gpu_check.py runs it in CI).

    python benchmarks/gpu_check.py OUT [--budget-s 450] [--tokens 128]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

import gpu_decode  # noqa: E402

from taskclock.runtime import storage  # noqa: E402

BATCH_SIZES = (1, 8, 32)
NO_CUDA = "no CUDA GPU here (CPU rehearsal)"


class Check:
    """The run's record: one entry per step, rewritten to JSON and Markdown after every step."""

    def __init__(self, out: Path, budget_s: float, cuda: bool) -> None:
        self.out, self.cuda = out, cuda
        self.deadline = time.monotonic() + budget_s
        self.steps: list[dict[str, Any]] = []

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, name: str, needs_s: float, work: Callable[[], dict[str, Any]], *, cuda_only: bool = False) -> None:
        """Run ``work`` (it returns the step's figures) unless it needs CUDA that is not here or more time than
        is left; record the outcome either way."""
        entry: dict[str, Any] = {"step": name}
        if cuda_only and not self.cuda:
            entry.update(status="skipped", reason=NO_CUDA)
        elif self.left_s() < needs_s:
            entry.update(status="skipped",
                         reason=f"time budget: {self.left_s():.0f} s left, the step needs ~{needs_s:.0f} s")
        else:
            start = time.monotonic()
            try:
                entry.update(status="ok", figures=work())
            except Exception as exc:  # every failure is a finding: recorded, and the next step runs
                entry.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                             trace=traceback.format_exc(limit=6))
            entry["seconds"] = round(time.monotonic() - start, 1)
        self.steps.append(entry)
        print(f"{name}: {entry['status']} {entry.get('reason') or entry.get('error') or ''}", file=sys.stderr,
              flush=True)
        self.write()

    def write(self) -> None:
        storage.write_atomic(self.out / "gpu_check.json", json.dumps({"steps": self.steps}, indent=1) + "\n")
        storage.write_atomic(self.out / "gpu_check.md", markdown(self.steps))


def markdown(steps: list[dict[str, Any]]) -> str:
    lines = ["# GPU check — `benchmarks/gpu_check.sh`", "", "| step | status | seconds | figures or reason |",
             "|---|---|---|---|"]
    for s in steps:
        said = s.get("reason") or s.get("error") or "; ".join(f"{k}: {v}" for k, v in (s.get("figures") or {}).items()
                                                            if not isinstance(v, (list, dict)))
        lines.append(f"| {s['step']} | {s['status']} | {s.get('seconds', '')} | {str(said).replace('|', '/')} |")
    for s in steps:
        for key, rows in (s.get("figures") or {}).items():
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                lines += ["", f"### {s['step']}: {key}", "", "| " + " | ".join(rows[0]) + " |",
                          "|" + "---|" * len(rows[0])]
                lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    import torch

    from taskclock.runtime.system import version

    figures: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                               "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                               **{name: version(name) for name in ("transformers", "bitsandbytes", "accelerate",
                                                                   "nvidia-ml-py", "llama-cpp-python")}}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        figures.update(gpu=torch.cuda.get_device_name(0), bf16=torch.cuda.is_bf16_supported(),
                       free_gib=round(free / 2**30, 1), total_gib=round(total / 2**30, 1))
    return figures


def doctor(out: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "taskclock", "doctor"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    (out / "doctor.txt").write_text(proc.stdout + proc.stderr)
    marks = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) > 1}
    return {"exit": proc.returncode, **marks}


def cuda_tests(out: Path, timeout_s: float) -> dict[str, Any]:
    report = out / "pytest.xml"
    with open(out / "pytest.log", "w") as log:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "tests/test_gpu.py",
                               f"--junitxml={report}", "-p", "no:cacheprovider"], stdout=log,
                              stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout_s)
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    cases = []
    for case in suite.iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        cases.append({"test": case.get("name"), "outcome": "passed" if outcome is None else outcome.tag,
                      "message": "" if outcome is None else (outcome.get("message") or "")[:200]})
    report.unlink()
    return {"exit": proc.returncode, **{k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")},
            "cases": cases}


def decode(shapes: list[str], dtypes: list[str], device: str, tokens: int, rounds: int,
           compiled: bool) -> dict[str, Any]:
    import torch

    rows = []
    for shape in shapes:
        for dtype in dtypes:
            modes = (False, True) if compiled and dtype == dtypes[0] else (False,)
            found, params_bytes = gpu_decode.measure(shape, device, tokens, rounds, getattr(torch, dtype), modes)
            floor = gpu_decode.bandwidth_floor(params_bytes) if device == "cuda" else "—"
            for mode, raw, ours, mem in found:
                rows.append({"shape": shape, "dtype": dtype, "mode": mode, "plain tok/s": round(raw, 1),
                             "taskclock tok/s": round(ours, 1), "ratio": round(ours / raw, 3), "peak GPU mem": mem,
                             "bandwidth floor": floor})
    return {"rows": rows}


def saved_shape(shape: str, folder: Path) -> Path:
    """A random-weight model of ``shape`` saved as a Hugging Face folder (what from_pretrained quantizes)."""
    import torch

    model, tokenizer = gpu_decode.build(shape, "cpu", torch.float16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def quantized(shape: str, device: str, tokens: int, folder: Path, kinds: tuple[str, ...] = ("8bit", "4bit")):
    from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
    from taskclock.runtime.options import HFOptions
    from taskclock.runtime.turn import run_turn

    rows = []
    for kind in kinds:
        spec = ModelSpec(f"{shape}-{kind}", "hf", str(folder), chat=False, backend_options=HFOptions(
            device=device, quantization=kind, dtype="float16" if kind == "8bit" else "auto"))
        model = load_model(spec)
        try:
            layers = sorted({type(m).__name__ for m in model.model.modules() if "bit" in type(m).__name__})
            ask = [{"role": "user", "content": gpu_decode.PROMPT}]
            result = run_turn(model, ask, SamplingParams(max_tokens=tokens))
        finally:
            model.close()
        m = result.metrics
        rows.append({"shape": shape, "quantization": kind, "layers": ",".join(layers), "load s": round(model.load_s, 1),
                     "decode tok/s": round(m.decode_tps or 0, 1), "peak GPU mem MiB": m.gpu_peak_mem_mb,
                     "error": result.done.error or ""})
    gpu_decode.release_memory()
    return {"rows": rows}


def batch(shapes: list[str], dtype: str, device: str, tokens: int) -> dict[str, Any]:
    import torch

    from taskclock.runtime import metrics
    from taskclock.runtime.backend import ModelSpec, SamplingParams
    from taskclock.runtime.backends.hf import HFModel
    from taskclock.runtime.options import HFOptions

    rows = []
    for shape in shapes:
        model, tokenizer = gpu_decode.build(shape, device, getattr(torch, dtype))
        spec = ModelSpec(shape, "hf", "(in memory)", chat=False, backend_options=HFOptions(device=device))
        loaded = HFModel(spec, model, tokenizer, device, 0.0, time.perf_counter_ns())
        try:
            ask = [{"role": "user", "content": gpu_decode.PROMPT}]
            loaded.stream_batch([ask], SamplingParams(max_tokens=4))  # untimed warm-up
            for size in BATCH_SIZES:
                start = time.perf_counter()
                streams = loaded.stream_batch([ask] * size, SamplingParams(max_tokens=tokens))
                wall = time.perf_counter() - start
                figures = [metrics.compute(events) for events in streams]
                rows.append({"shape": shape, "dtype": dtype, "batch": size,
                             "aggregate tok/s": round(sum(f.output_tokens for f in figures) / wall, 1),
                             "mean TTFT s": round(statistics.fmean(f.ttft_s or 0 for f in figures), 3),
                             "peak GPU mem MiB": figures[0].gpu_peak_mem_mb})
        finally:
            loaded.worker.close()
            del model, loaded
            gpu_decode.release_memory()
    return {"rows": rows}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for gpu_check.json, gpu_check.md, pytest.log, doctor.txt")
    parser.add_argument("--budget-s", type=float, default=450, help="no step starts that would run past this")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    storage.ensure_dir(args.out)
    check = Check(args.out, args.budget_s, cuda)
    device = "cuda" if cuda else "cpu"
    small = "smollm2" if cuda else "tiny"
    tokens = args.tokens if cuda else min(args.tokens, 16)
    half = ["float16", "bfloat16"] if cuda else ["float32", "bfloat16"]
    check.step("environment", 0, environment)
    check.step("doctor", 20, lambda: doctor(args.out))
    check.step("cuda-tests", 60, lambda: cuda_tests(args.out, max(60.0, min(240.0, check.left_s() - 150))))
    check.step("decode (small shape)", 20, lambda: decode([small], half, device, tokens, args.rounds, compiled=cuda))
    check.step("decode (8B shape, eager)", 60, lambda: decode(["llama3-8b"], half, device, tokens, args.rounds,
                                                                compiled=False), cuda_only=True)
    with tempfile.TemporaryDirectory(prefix="taskclock-gpu-check-") as tmp:
        check.step("quantized (small shape)", 20,
                   lambda: quantized(small, device, tokens, saved_shape(small, Path(tmp) / small)))
        check.step("batch 1/8/32 (small shape)", 20, lambda: batch([small], half[0], device, tokens))
        check.step("batch 1/8/32 (8B shape)", 60, lambda: batch(["llama3-8b"], "bfloat16", device, tokens),
                   cuda_only=True)
        check.step("compiled decode (8B shape)", 120, lambda: decode(["llama3-8b"], ["bfloat16"], device, tokens,
                                                                     args.rounds, compiled=True), cuda_only=True)
        check.step("quantized 4-bit (8B shape)", 120, lambda: quantized(
            "llama3-8b", device, tokens, saved_shape("llama3-8b", Path(tmp) / "llama3-8b"), ("4bit",)),
            cuda_only=True)
    failed = [s["step"] for s in check.steps if s["status"] == "failed"]
    print(markdown(check.steps))
    print(f"wrote {args.out / 'gpu_check.md'} and gpu_check.json; failed: {', '.join(failed) or 'none'}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
