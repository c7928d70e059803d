"""`taskclock sweep`: TTFT and task time against input length, cold and from a cached prefix, per model."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from taskclock.runtime.untrusted import error_line, safe_line

from . import common
from .bench import ProgressBars

# Options fixed in run.toml when a sweep starts: --resume refuses them rather than silently ignoring them.
PLAN_OPTIONS = {"models": "--models", "input_tokens": "--input-tokens", "output_tokens": "--output-tokens",
                "repeats": "--repeats", "warmup": "--warmup", "out": "--out", "dtype": "--dtype",
                "device": "--device", "quantization": "--quant", "n_ctx": "--ctx", "n_gpu_layers": "--gpu-layers",
                "compile": "--compile", "threads": "--threads", "flash_attn": "--no-flash-attn"}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="TTFT and task time against input length (cold and cached prefix) for several models",
        description="For each model and input length, build a prompt of exactly that many tokens (by the model's "
                    "tokenizer) from the built-in MMLU text, run it cold (a salted prefix no cache holds) and "
                    "cached (the same prefix, another question), append every row to runs/<run-id>/results.jsonl "
                    "and print TTFT, prefill tok/s, decode tok/s and task time per length. Ctrl-C keeps every "
                    "finished row; --resume continues the run.")
    common.add_model_options(p, many=True)
    next(a for a in p._actions if a.dest == "models").required = False  # not needed with --resume
    p.add_argument("--input-tokens", metavar="N1,N2,...",
                   help="prompt lengths in tokens, comma-separated (default 256,1024,4096)")
    p.add_argument("--output-tokens", type=common.whole_number,
                   help="at most this many tokens per reply (default 32)")
    p.add_argument("--repeats", type=common.whole_number,
                   help="run every model × length N times; the summary gives medians (default 1)")
    p.add_argument("--warmup", type=common.whole_number, help="untimed turns per model before measuring (default 1)")
    p.add_argument("--out", help="folder for run folders (default: runs/ in a checkout, else the user data dir)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted sweep folder as it was planned (options that would change it "
                        "are refused)")
    p.add_argument("--no-plots", action="store_true", help="do not print the text plots at the end")


def prepare_run(args: argparse.Namespace):
    """A new sweep folder from the options, or the folder being resumed; returns (folder, plan)."""
    from taskclock.runtime import sweep, values
    from taskclock.runtime.config import load_config
    from taskclock.runtime.errors import DataError
    from taskclock.runtime.paths import default_runs_dir

    with common.options_named():  # the options as given, before defaults fill in (runtime/values.py)
        values.check_plan(output_tokens=args.output_tokens, repeats=args.repeats, warmup=args.warmup)
    config = load_config(args.config)
    if args.resume:
        common.refuse_plan_options(args, PLAN_OPTIONS)
        folder = Path(args.resume)
        return folder, sweep.read_plan(folder)
    if not args.models:
        raise DataError("no models given", "pass --models A,B (or --resume RUN_DIR)")
    lengths = values.parse_counts(args.input_tokens or sweep.DEFAULT_LENGTHS, "--input-tokens", sweep.DEFAULT_LENGTHS)
    specs = common.resolve_specs(common.split_models(args.models), args, config)
    runs_dir = Path(args.out or config.defaults.runs_dir or default_runs_dir())
    with common.options_named():
        return sweep.prepare(models=specs, input_tokens=lengths,
                             output_tokens=args.output_tokens or sweep.DEFAULT_OUTPUT_TOKENS,
                             repeats=args.repeats or 1, warmup=1 if args.warmup is None else args.warmup,
                             runs_dir=runs_dir)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from taskclock.runtime import runfolder, sweep

    folder, plan = prepare_run(args)
    err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    err.print(f"run folder: {safe_line(folder)}  ({len(plan.models)} model(s) × input tokens "
              f"{', '.join(map(str, plan.input_tokens))} × {plan.repeats} repeat(s), cold and cached)")
    cancel = threading.Event()
    with ProgressBars(err) as on_progress:
        runner = sweep.SweepRunner(folder, plan, cancel=cancel, on_progress=on_progress)
        outcome, interrupted = common.run_interruptibly(runner.run, cancel)
    result = sweep.export(folder)
    if result.rows:  # none: the table would be empty (the failures or the interruption say why below)
        print_results(Console(), result, plots=not args.no_plots)
    if result.damaged:
        err.print(runfolder.damage_note(result.damaged))
    for skip in result.skips:
        err.print(f"skipped {error_line(sweep.skip_line(skip))}")
    return common.finish_run(err, "sweep", safe_line(folder), result.failures, result.rows, result.expected_rows(),
                             interrupted or outcome.interrupted, "they are left out of the medians",
                             "results.jsonl, results.csv, summary.md, summary.json, plots.txt", result.system)


def print_results(console, result, plots: bool) -> None:
    from taskclock.runtime.sweep import COLUMNS, text_plots
    from taskclock.runtime.tables import LATENCY_COLUMNS, cell_row, latency_row

    from ..format import figure_table, plain

    columns = [column for column in COLUMNS  # no server reported a prefix cache: no column for it
               if column.key != "cached_tokens" or any(c.cached_tokens is not None for c in result.cells)]
    rows = [[plain(value) for value in cell_row(cell, columns)] for cell in result.cells]  # names: outside text
    console.print(figure_table("by input length (medians over repeats; prefill = input tokens / TTFT, cached rows: "
                               "uncached tokens only, — where the backend does not report its cache)",
                               [column.short_header for column in columns], rows, names={0},
                               left={[column.key for column in columns].index("phase")}))
    console.print(figure_table("latency percentiles over repeats (ITL per token)",
                               ["model", "in tok", "prompt", *(column.header for column in LATENCY_COLUMNS)],
                               [[plain(c.model), plain(c.requested_tokens), plain(c.phase),
                                 *map(plain, latency_row(c.latency))] for c in result.cells if c.latency is not None],
                               names={0}, left={2}))
    if plots and result.cells:
        console.print(text_plots(result, width=min(console.width, 100)), markup=False, highlight=False)
    sys.stdout.flush()
