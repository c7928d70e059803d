"""MMLU load: how long reading the built-in copy (14,042 test rows from the packaged zip) takes (target < 0.3 s).

    .venv/bin/python benchmarks/mmlu_load.py [--runs 10] [--markdown]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from taskclock.runtime import mmlu  # noqa: E402

TARGET_S = 0.3


def time_load() -> tuple[float, int]:
    start = time.perf_counter()
    data = mmlu.load(None)
    return time.perf_counter() - start, len(data.questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md section")
    args = parser.parse_args()
    first, rows = time_load()  # includes importing zipfile/csv and the cold file read
    times = [time_load()[0] for _ in range(args.runs)]
    median, worst = statistics.median(times), max(times)
    if args.markdown:
        print("## Built-in MMLU load — `benchmarks/mmlu_load.py`\n")
        print(f"`mmlu.load(None)` reads {rows:,} test rows from the packaged `mmlu.zip`: first call "
              f"**{first*1000:.0f} ms**, then median **{median*1000:.0f} ms**, worst {worst*1000:.0f} ms over "
              f"{args.runs} runs (target < {TARGET_S*1000:.0f} ms).")
    else:
        print(f"built-in MMLU ({rows} rows): first {first*1000:.0f} ms, median {median*1000:.0f} ms, "
              f"worst {worst*1000:.0f} ms over {args.runs} runs (target < {TARGET_S*1000:.0f} ms)")


if __name__ == "__main__":
    main()
