"""Run every benchmark and rewrite docs/BENCHMARKS.md with their sections, the machine and the date.

    make bench            # or: .venv/bin/python benchmarks/run_all.py [--only startup,overhead]

Each benchmark script prints its own Markdown section with `--markdown`; GPU-only benchmarks are run only
where CUDA is available and say so otherwise.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("startup", "mmlu_load", "overhead", "vs_llama_server", "threads", "ui_overhead", "batch_scaling",
              "gpu_decode", "soak", "sweep", "load_client")
GPU_OPTION = ("batch_scaling",)  # benchmarks that take --gpu for their GPU sizes


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def machine() -> str:
    import importlib.metadata as md

    versions = ", ".join(f"{name} {md.version(name)}" for name in ("torch", "transformers", "llama-cpp-python"))
    gpu = "no GPU"
    if cuda_available():
        import torch

        gpu = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, "
            f"{versions}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else BENCHMARKS
    sections = []
    for name in chosen:
        script = ROOT / "benchmarks" / f"{name}.py"
        print(f"running {name}…", file=sys.stderr, flush=True)
        options = ["--gpu"] if name in GPU_OPTION and cuda_available() else []
        proc = subprocess.run([sys.executable, str(script), "--markdown", *options], cwd=ROOT, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            sections.append(f"## {name}\n\nDid not run: {tail}")
        else:
            sections.append(proc.stdout.strip())
    header = (
        "# Benchmarks\n\n"
        "Speed targets live here, not in the tests. Written by `make bench` (`benchmarks/run_all.py`); each "
        "script also runs alone and prints the same section with `--markdown`. What the targets mean and "
        "what was done to meet them: docs/PERFORMANCE.md.\n\n"
        f"Machine: {machine()}. Date: {datetime.date.today().isoformat()}."
    )
    from taskclock.runtime.storage import write_atomic

    write_atomic(ROOT / "docs" / "BENCHMARKS.md", header + "\n\n" + "\n\n".join(sections) + "\n")
    print("wrote docs/BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
