"""Input-length sweep: TTFT, prefill tok/s, decode tok/s and task time at growing input lengths, cold and cached.

Runs `taskclock sweep`'s runner (runtime/sweep.py) on the default models: prompts of exactly N tokens by each
model's tokenizer, cut from the built-in MMLU text, each run cold (a salted context no cache holds) and then
cached (the same context, another question). With ``--http`` llama.cpp's own llama-server (SmolLM2, one slot)
is swept too, over HTTP on loopback. Figures are medians over ``--repeats``.

    .venv/bin/python benchmarks/sweep.py [--models smollm2,smollm2-hf,gemma3-270m] [--input-tokens 128,512,2048]
        [--output-tokens 32] [--repeats 1] [--http] [--out RUNS_DIR] [--markdown]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from common import LlamaServer  # noqa: E402

from taskclock.runtime import sweep  # noqa: E402
from taskclock.runtime.backend import ModelSpec  # noqa: E402
from taskclock.runtime.metrics import figure  # noqa: E402
from taskclock.runtime.models import local_file, resolve  # noqa: E402

DEFAULT_MODELS = "smollm2,smollm2-hf,gemma3-270m"


def run(specs: list[ModelSpec], lengths: list[int], output_tokens: int, repeats: int,
        out: str | None) -> sweep.SweepSummary:
    """The sweep in a run folder under ``out`` (kept, so `taskclock export` can redraw it) or a temporary one."""
    with contextlib.ExitStack() as stack:
        runs = out or stack.enter_context(tempfile.TemporaryDirectory())
        folder, plan = sweep.prepare(models=specs, input_tokens=lengths, output_tokens=output_tokens,
                                     repeats=repeats, warmup=1, runs_dir=Path(runs))
        sweep.SweepRunner(folder, plan, on_progress=lambda p: print(f"{p.model} · {p.task}: {p.state}",
                                                                     file=sys.stderr)).run()
        return sweep.export(folder)


def report(result: sweep.SweepSummary, output_tokens: int, repeats: int, markdown: bool) -> None:
    cells = {(c.model, c.requested_tokens, c.phase): c for c in result.cells}
    header = ("| model | backend | input tokens | TTFT cold | TTFT cached | prefill tok/s cold | decode tok/s | "
              "task time cold | task time cached |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for spec in result.plan.models:
        for n in result.plan.input_tokens:
            cold, cached = cells.get((spec.name, n, "cold")), cells.get((spec.name, n, "cached"))
            if cold is None or cached is None:
                continue
            lines.append(f"| {spec.name} | {spec.backend} | {n} | {figure(cold.ttft_s, 3, 's')} | "
                         f"{figure(cached.ttft_s, 3, 's')} | {figure(cold.prefill_tps, 0)} | "
                         f"{figure(cold.decode_tps, 1)} | {figure(cold.task_time_s, 2, 's')} | "
                         f"{figure(cached.task_time_s, 2, 's')} |")
    skipped = [f"- skipped {sweep.skip_line(s)}" for s in result.skips]
    failed = [f"- {m} failed: {e}" for m, e in result.failures.items()]
    if not markdown:
        print("\n".join(lines + skipped + failed))
        print(sweep.text_plots(result))
        return
    sources = ", ".join(f"{m}: {s}" for m, s in result.token_sources().items())
    print("## Input-length sweep — `benchmarks/sweep.py`\n\n"
          f"`taskclock sweep`'s runner, greedy, at most {output_tokens} output tokens, {repeats} repeat(s) (medians), "
          "one untimed warm-up turn per model. Each prompt holds exactly the input tokens given by the model's own "
          f"tokenizer and chat template ({sources}). Cold: the context starts with a salt no earlier request had; "
          "cached: the same context again with only the question changed. Prefill tok/s = input tokens / TTFT (cached "
          "rows: the tokens the cache did not serve, — where the backend does not report them); decode tok/s is the "
          "cold turn's.\n")
    print("\n".join(lines))
    if skipped or failed:
        print("\n" + "\n".join(skipped + failed))
    print("\n```text\n" + sweep.text_plots(result) + "\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--input-tokens", default="128,512,2048")
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--http", action="store_true", help="also sweep llama.cpp's llama-server (SmolLM2, one slot)")
    parser.add_argument("--out", help="keep the run folder under this folder (default: a temporary one)")
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md section")
    args = parser.parse_args()
    lengths = [int(n) for n in args.input_tokens.split(",")]
    specs = [resolve(name) for name in args.models.split(",")]
    with contextlib.ExitStack() as stack:
        if args.http:
            url = stack.enter_context(LlamaServer(local_file(resolve("smollm2")), slots=1, n_ctx=4096))
            specs.append(ModelSpec("llama-server", "http", url))
        result = run(specs, lengths, args.output_tokens, args.repeats, args.out)
    report(result, args.output_tokens, args.repeats, args.markdown)


if __name__ == "__main__":
    main()
