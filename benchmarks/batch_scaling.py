"""Batch scaling: aggregate output tok/s and mean task time at batch sizes 1, 2, 4, 8 (…128).

Replays the same MMLU `paraphrase` prompts through one HF model at each batch size (greedy, same token
budget), using the same batched path as `taskclock bench --batch-size B`. Aggregate throughput = all output
tokens / wall time of the whole set; mean task time = each request's own submission-to-end time, averaged.
Target on a GPU: batch 16 gives >= 8x the aggregate throughput of batch 1.

With ``--http`` the same sweep runs through `taskclock bench`'s runner against llama.cpp's own llama-server
(SmolLM2, one parallel slot per request of the largest size, started on loopback), where the batch size is
the number of requests in flight.

    .venv/bin/python benchmarks/batch_scaling.py [--model smollm2-hf] [--mmlu FOLDER]
        [--requests 16] [--tokens 64] [--sizes 1,2,4,8] [--gpu] [--http] [--markdown]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from common import LlamaServer  # noqa: E402

from taskclock.runtime import bench, metrics, mmlu, summary, tasks  # noqa: E402
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model  # noqa: E402
from taskclock.runtime.bench import batches  # noqa: E402
from taskclock.runtime.models import local_file, resolve  # noqa: E402

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
    peaks = [m.gpu_peak_mem_mb for m in map(metrics.compute, streams) if m.gpu_peak_mem_mb is not None]
    return {"size": size, "requests": len(streams), "tokens": tokens, "wall_s": wall,
            "aggregate_tps": tokens / wall, "mean_task_s": statistics.fmean(task_times),
            "mean_ttft_s": statistics.fmean(metrics.ttft_s(s) or 0.0 for s in streams),
            "peak_gpu_mb": max(peaks) if peaks else None}


def run_http(sizes: list[int], requests: int, tokens: int, mmlu_source: str | None) -> list[dict]:
    """The sweep through the bench runner against llama-server with max(sizes) slots."""
    data = mmlu.load(mmlu_source)
    with LlamaServer(local_file(resolve("smollm2")), slots=max(sizes), n_ctx=1024 * max(sizes)) as url, \
            tempfile.TemporaryDirectory() as runs:
        folder, plan = bench.prepare(
            models=[ModelSpec("llama-server", "http", url)], task_list=[tasks.BUILTIN["paraphrase"]], data=data,
            subjects=None, limit=requests, seed=0, batch_size=sizes[0], warmup=1, max_tokens=tokens,
            sampling=SamplingParams(), runs_dir=Path(runs), batch_sizes=sizes)
        bench.BenchRunner(folder, plan, data.by_id()).run()
        cells = summary.load_summary(folder).cells
    return [{"size": c.batch_size, "requests": c.done, "tokens": c.set_output_tokens, "wall_s": c.total_time_s,
             "aggregate_tps": c.aggregate_tps, "mean_task_s": c.mean("task_time_s"), "mean_ttft_s": c.mean("ttft_s")}
            for c in cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-hf")
    parser.add_argument("--mmlu", help="MMLU folder (default: the built-in copy)")
    parser.add_argument("--requests", type=int, default=16, help="prompts replayed at every batch size")
    parser.add_argument("--tokens", type=int, default=64, help="max output tokens per request")
    parser.add_argument("--sizes", help=f"batch sizes (default {CPU_SIZES}; {GPU_SIZES} with --gpu)")
    parser.add_argument("--gpu", action="store_true", help="load on CUDA and try batch sizes up to 128")
    parser.add_argument("--http", action="store_true",
                        help="sweep requests in flight against llama.cpp's llama-server instead (SmolLM2)")
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md table")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or (GPU_SIZES if args.gpu else CPU_SIZES)).split(",")]
    requests = max(args.requests, max(sizes))
    if args.http:
        report_http(run_http(sizes, requests, args.tokens, args.mmlu), requests, args.tokens, args.markdown)
        return
    questions = mmlu.select(mmlu.load(args.mmlu), None, requests, seed=0)
    spec = resolve(args.model)
    model = load_model(spec.with_overrides(device="cuda" if args.gpu else None))
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
              f"{model.device.upper()}, {requests} MMLU `paraphrase` prompts (seed 0), greedy, at most "
              f"{args.tokens} output tokens each, through `HFModel.stream_batch` (left-padded batches). Aggregate = "
              f"all output tokens / wall time of the set; task time = each request's own submission-to-end time.\n")
        print("| batch | aggregate output tok/s | × batch 1 | mean task time | mean TTFT | peak GPU memory |")
        print("|---|---|---|---|---|---|")
        for r in results:
            peak = f"{r['peak_gpu_mb']:.0f} MiB" if r["peak_gpu_mb"] else "—"
            print(f"| {r['size']} | {r['aggregate_tps']:.1f} | {r['aggregate_tps'] / base:.2f}× | "
                  f"{r['mean_task_s']:.2f} s | {r['mean_ttft_s']:.3f} s | {peak} |")


def report_http(results: list[dict], requests: int, tokens: int, markdown: bool) -> None:
    base = results[0]["aggregate_tps"]
    if not markdown:
        for r in results:
            print(f"{r['size']:>3} in flight: {r['aggregate_tps']:8.1f} tok/s aggregate, "
                  f"mean task {r['mean_task_s']:.2f} s, mean TTFT {r['mean_ttft_s']:.3f} s "
                  f"({r['tokens']:.0f} tokens in {r['wall_s']:.1f} s)")
        return
    print(f"## Concurrency against llama.cpp's llama-server — `benchmarks/batch_scaling.py --http`\n\n"
          f"SmolLM2-135M Q4_1 served by `llama-server -np {max(r['size'] for r in results)}` (built by `make install`, "
          f"all cores) on loopback; `taskclock bench`'s runner replays {requests} MMLU `paraphrase` prompts (seed 0, "
          f"greedy, at most {tokens} output tokens) with that many requests in flight. Aggregate = all output "
          f"tokens / wall time of the set; task time = each request's own submission-to-end time.\n")
    print("| requests in flight | aggregate output tok/s | × 1 in flight | mean task time | mean TTFT |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']} | {r['aggregate_tps']:.1f} | {r['aggregate_tps'] / base:.2f}× | "
              f"{r['mean_task_s']:.2f} s | {r['mean_ttft_s']:.3f} s |")


if __name__ == "__main__":
    main()
