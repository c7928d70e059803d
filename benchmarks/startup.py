"""Startup: how long `taskclock --help` takes in a fresh process (target <= 0.25 s).

    .venv/bin/python benchmarks/startup.py [--runs 10] [--markdown]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_help() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "taskclock", "--help"], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md section")
    args = parser.parse_args()
    time_help()  # warm the OS file cache once
    times = [time_help() for _ in range(args.runs)]
    median, worst = statistics.median(times), max(times)
    if args.markdown:
        print("## Startup — `benchmarks/startup.py`\n")
        print(f"`taskclock --help` in a fresh interpreter, {args.runs} runs: median **{median*1000:.0f} ms**, "
              f"worst {worst*1000:.0f} ms (target ≤ 250 ms). It imports neither torch, transformers, "
              "llama_cpp nor textual (tests/test_imports.py proves it).")
    else:
        print(f"taskclock --help: median {median*1000:.0f} ms, worst {worst*1000:.0f} ms over {args.runs} runs "
              f"(target <= 250 ms)")


if __name__ == "__main__":
    main()
