"""Batch scaling on transformers: aggregate output tok/s and mean task time at batch sizes 1, 2, 4, 8 (…128).

Replays the same MMLU `paraphrase` prompts through one HF model at each batch size (greedy, same token
budget), using the same batched path as `taskclock bench --batch-size B`. Aggregate throughput = all output
tokens / wall time of the whole set; mean task time = each request's own submission-to-end time, averaged.
Target on a GPU: batch 16 gives >= 8x the aggregate throughput of batch 1.

    .venv/bin/python benchmarks/batch_scaling.py [--model smollm2-hf] [--mmlu FOLDER]
        [--requests 16] [--tokens 64] [--sizes 1,2,4,8] [--gpu] [--markdown]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from taskclock.runtime import metrics, mmlu, tasks  # noqa: E402
from taskclock.runtime.backend import SamplingParams, load_model  # noqa: E402
from taskclock.runtime.bench import batches  # noqa: E402
from taskclock.runtime.models import resolve, with_overrides  # noqa: E402

CPU_SIZES = "1,2,4,8"
GPU_SIZES = "1,2,4,8,16,32,64,128"


def run_size(model, conversations, params, size: int) -> dict:
    """The whole request set at one batch size: wall time, tokens, and each request's task time."""
    start = time.perf_counter()
    streams = []
    for chunk in batches(conversations, size):
        streams.extend(model.stream_batch(chunk, params))
    wall = time.perf_counter() - start
    tokens = sum(metrics.output_tokens(s) for s in streams)
    task_times = [metrics.task_time_s(s) for s in streams]
    return {"size": size, "requests": len(streams), "tokens": tokens, "wall_s": wall,
            "aggregate_tps": tokens / wall, "mean_task_s": statistics.fmean(task_times),
            "mean_ttft_s": statistics.fmean(metrics.ttft_s(s) or 0.0 for s in streams)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-hf")
    parser.add_argument("--mmlu", help="MMLU folder (default: the built-in copy)")
    parser.add_argument("--requests", type=int, default=16, help="prompts replayed at every batch size")
    parser.add_argument("--tokens", type=int, default=64, help="max output tokens per request")
    parser.add_argument("--sizes", help=f"batch sizes (default {CPU_SIZES}; {GPU_SIZES} with --gpu)")
    parser.add_argument("--gpu", action="store_true", help="load on CUDA and try batch sizes up to 128")
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md table")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or (GPU_SIZES if args.gpu else CPU_SIZES)).split(",")]
    requests = max(args.requests, max(sizes))
    questions = mmlu.select(mmlu.load(args.mmlu), None, requests, seed=0)
    spec = resolve(args.model)
    model = load_model(with_overrides(spec, device="cuda" if args.gpu else None))
    task = tasks.BUILTIN["paraphrase"]
    conversations = [tasks.messages(task, q, spec.chat) for q in questions]
    params = SamplingParams(max_tokens=args.tokens)
    model.stream_batch(conversations[:2], SamplingParams(max_tokens=4))  # warm-up, untimed
    results = []
    for size in sizes:
        results.append(run_size(model, conversations, params, size))
        r = results[-1]
        print(f"batch {size:>3}: {r['aggregate_tps']:8.1f} tok/s aggregate, mean task {r['mean_task_s']:.2f} s, "
              f"mean TTFT {r['mean_ttft_s']:.3f} s ({r['tokens']} tokens in {r['wall_s']:.1f} s)", file=sys.stderr)
    model.close()
    if args.markdown:
        base = results[0]["aggregate_tps"]
        print(f"## Batch scaling on transformers — `benchmarks/batch_scaling.py`\n\n{args.model} on "
              f"{'CUDA' if args.gpu else 'CPU'}, {requests} MMLU `paraphrase` prompts (seed 0), greedy, at most "
              f"{args.tokens} output tokens each, through `HFModel.stream_batch` (left-padded batches). Aggregate = "
              f"all output tokens / wall time of the set; task time = each request's own submission-to-end time.\n")
        print("| batch | aggregate output tok/s | × batch 1 | mean task time | mean TTFT |")
        print("|---|---|---|---|---|")
        for r in results:
            print(f"| {r['size']} | {r['aggregate_tps']:.1f} | {r['aggregate_tps'] / base:.2f}× | "
                  f"{r['mean_task_s']:.2f} s | {r['mean_ttft_s']:.3f} s |")


if __name__ == "__main__":
    main()
