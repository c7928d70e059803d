"""`taskclock bench`: replay MMLU task sets over several models, headless, with resumable run folders."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from taskclock.runtime.untrusted import error_line, safe_line

from . import common

if TYPE_CHECKING:
    from rich.progress import TaskID

DEFAULT_TASKS = "mc,paraphrase,explain"
WIDE_CONSOLE = 100  # narrower: the rankings say "noise ±0.21" for "within noise (n=4, ±0.21 s)" (the verdict in full)
# Two narrow tables rather than one too wide for a terminal (CellStats keys); summary.md has every column in one.
CONSOLE_TABLES = (
    ("speed", ("model", "task", "done", "batch_size", "mean_ttft_s", "mean_ttfa_s", "mean_decode_tps",
               "mean_task_time_s", "p90_task_time_s")),
    ("verbosity and accuracy", ("model", "task", "mean_output_tokens", "mean_thinking_tokens", "mean_answer_tokens",
                                "median_output_tokens", "mean_output_words", "mean_thinking_words",
                                "mean_answer_words", "words_per_s", "accuracy", "no_letter_rate")),
)  # the thinking/answer columns only when some model thought (summary.shown_columns)

def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="replay MMLU task sets over several models and compare task time with tokens/s",
        description="Run the mc / paraphrase / explain task sets over an MMLU sample for each model, append every "
                    "row to runs/<run-id>/results.jsonl, then print the per model × task table and rankings. "
                    "Ctrl-C keeps every finished row; --resume continues the run.")
    common.add_model_options(p, many=True)
    next(a for a in p._actions if a.dest == "models").required = False  # not needed with --resume
    p.add_argument("--tasks", help=f"comma-separated task sets (default: {DEFAULT_TASKS})")
    p.add_argument("--mmlu", help="MMLU data folder (default: $TASKCLOCK_MMLU, then config defaults.mmlu)")
    p.add_argument("--subjects", help="comma-separated MMLU subjects, or 'all' (default)")
    p.add_argument("--limit", type=common.whole_number, default=None,
                   help="questions in the sample (default 660, as in the paper)")
    p.add_argument("--seed", type=common.whole_number, help="sample and sampling seed (default 0)")
    p.add_argument("--max-tokens", type=common.whole_number, help="cap every task's token budget")
    p.add_argument("--batch-size", type=common.whole_number,
                   help="requests per batch: a padded batch on transformers models, requests in flight on HTTP "
                        "models (default 1)")
    p.add_argument("--batch-sizes", metavar="B1,B2,...",
                   help="sweep these batch sizes in one run (e.g. 1,2,4,8); overrides --batch-size")
    p.add_argument("--repeats", type=common.whole_number,
                   help="run every model × task × batch size N times; report mean, sd and 95%% CI (default 1)")
    p.add_argument("--no-prefix-cache", action="store_true", default=None,
                   help="salt every prompt so a server's prefix cache cannot serve replayed prompts")
    p.add_argument("--input-tokens", type=common.whole_number, metavar="N",
                   help="a fixed-length workload in place of the task sets, for like-for-like runs with other tools: "
                        "prompts of exactly N tokens by each model's own tokenizer (needs --output-tokens)")
    p.add_argument("--output-tokens", type=common.whole_number, metavar="M",
                   help="with --input-tokens: replies of M tokens (ignore_eos where the engine supports it: "
                        "llama.cpp, transformers, llama.cpp's server, vLLM)")
    p.add_argument("--warmup", type=common.whole_number, help="untimed turns per model before measuring (default 1)")
    p.add_argument("--out", help="folder for run folders (default: runs/ in a checkout, else the user data dir)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run folder with the models, tasks and questions it was started "
                        "with (options that would change them are refused)")
    p.add_argument("--no-plots", action="store_true", help="do not print the text plots at the end")


def _check_numbers(args: argparse.Namespace) -> None:
    """The options as given (before defaults fill in: --limit 0 is refused, not read as "the default"), held to
    the ranges every plan is (runtime/values.py), before anything is loaded."""
    from taskclock.runtime import values
    from taskclock.runtime.backend import SamplingParams
    from taskclock.runtime.errors import DataError

    with common.options_named():
        if args.seed is not None:
            SamplingParams(seed=args.seed)
        values.check_plan(limit=args.limit, max_tokens=args.max_tokens, batch_size=args.batch_size,
                          warmup=args.warmup, repeats=args.repeats, input_tokens=args.input_tokens,
                          output_tokens=args.output_tokens)
    if (args.input_tokens is None) != (args.output_tokens is None):
        raise DataError("--input-tokens and --output-tokens go together", "pass both, or neither")
    if args.input_tokens is not None and (args.tasks or args.max_tokens):
        raise DataError("a fixed-length workload replaces the task sets and their budgets",
                        "drop --tasks and --max-tokens, or --input-tokens and --output-tokens")


# Options fixed in run.toml when a run starts (with the model and backend options, common.model_flags): --resume
# refuses them rather than silently ignoring them.
PLAN_OPTIONS = {"models": "--models", "tasks": "--tasks", "limit": "--limit", "subjects": "--subjects",
                "seed": "--seed", "max_tokens": "--max-tokens", "batch_size": "--batch-size", "warmup": "--warmup",
                "batch_sizes": "--batch-sizes", "repeats": "--repeats", "no_prefix_cache": "--no-prefix-cache",
                "out": "--out", "input_tokens": "--input-tokens", "output_tokens": "--output-tokens"}


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def prepare_run(args: argparse.Namespace):
    """A new run folder from the options, or the folder being resumed; returns (folder, plan, data)."""
    from taskclock.runtime import bench, mmlu, runfolder, tasks, values
    from taskclock.runtime.config import load_config
    from taskclock.runtime.errors import DataError
    from taskclock.runtime.paths import default_runs_dir

    _check_numbers(args)
    config = load_config(args.config)
    if args.resume:
        common.refuse_plan_options(args, {**PLAN_OPTIONS, **common.model_flags()})
        folder = Path(args.resume)
        plan = runfolder.read_plan(folder)
        return folder, plan, mmlu.load(args.mmlu or plan.mmlu)
    if not args.models:
        raise DataError("no models given", "pass --models A,B (or --resume RUN_DIR)")
    specs = common.resolve_specs(common.split_models(args.models), args, config)
    task_list = tasks.resolve(_split(args.tasks or DEFAULT_TASKS), config.tasks)
    data = mmlu.load(mmlu.resolve_path(args.mmlu, config.defaults.mmlu))
    runs_dir = Path(args.out or config.defaults.runs_dir or default_runs_dir())
    with common.options_named():
        folder, plan = bench.prepare(
            models=specs, task_list=task_list, data=data, subjects=_split(args.subjects or "all"),
            limit=args.limit or mmlu.DEFAULT_LIMIT, seed=args.seed or 0, batch_size=args.batch_size or 1,
            warmup=1 if args.warmup is None else args.warmup,
            max_tokens=args.max_tokens or 0, sampling=config.sampling, runs_dir=runs_dir,
            batch_sizes=values.parse_counts(args.batch_sizes, "--batch-sizes") if args.batch_sizes else [],
            repeats=args.repeats or 1, no_prefix_cache=bool(args.no_prefix_cache),
            input_tokens=args.input_tokens or 0, output_tokens=args.output_tokens or 0)
    return folder, plan, data


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from taskclock.runtime import bench, runfolder, summary

    folder, plan, data = prepare_run(args)
    # Paths stay whole, so they can be copied. No markup: every line carries paths, names or server errors.
    err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    if data.skipped:
        err.print(f"skipped {len(data.skipped)} malformed MMLU row(s), e.g. {safe_line(data.skipped[0])}")
    err.print(f"run folder: {safe_line(folder)}  ({len(plan.question_ids)} questions × {len(plan.tasks)} task(s) × "
              f"{len(plan.models)} model(s); batch sizes {', '.join(map(str, plan.sizes()))}; "
              f"{plan.repeats} repeat(s))")
    single = [safe_line(m.name) for m in plan.models if plan.sizes_for(m) != plan.sizes()]
    if single:
        err.print(f"note: {', '.join(single)} run(s) one request at a time (the backend neither batches nor "
                  f"serves concurrent requests): measured at batch 1 only", highlight=False)
    cancel = threading.Event()
    with ProgressBars(err) as on_progress:
        runner = bench.BenchRunner(folder, plan, data.by_id(), cancel=cancel, on_progress=on_progress)
        outcome, interrupted = common.run_interruptibly(runner.run, cancel)
    result = summary.load_summary(folder)
    summary.export(folder)
    if result.rows:  # none: the tables would be empty (the failures or the interruption say why below)
        print_results(Console(), result, plots=not args.no_plots)
    for note in summary.fixed_notes(result):
        err.print(note, markup=False, highlight=False)
    if result.damaged:
        err.print(runfolder.damage_note(result.damaged), markup=False, highlight=False)
    return common.finish_run(err, "bench", safe_line(folder), result.failures, result.rows, plan.total_rows(),
                             interrupted or outcome.interrupted,
                             "they are counted apart from the figures (see the errors column in summary.md)",
                             "results.jsonl, results.csv, summary.md, summary.json", result.system)


class ProgressBars:
    """One rich bar per model × task with ETA; the runner reports from its thread (rich locks updates)."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # markup=False: descriptions hold model names, states hold server errors
        self.progress = Progress(TextColumn("{task.description:<28}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[state]}", markup=False),
                                 console=console)
        self.bars: dict[tuple[str, str], TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self):
        self.progress.start()
        return self.update

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, report) -> None:
        key = (report.model, report.task)
        with self.lock:
            if key not in self.bars:
                self.bars[key] = self.progress.add_task(safe_line(f"{report.model} · {report.task}"),
                                                        total=report.total, completed=report.done, state=report.state)
        state = f"failed: {error_line(report.error)}" if report.state == "failed" else report.shown
        if report.state == "running" and report.batch_size:
            state = f"running at batch {report.batch_size}"
        self.progress.update(self.bars[key], completed=report.done, state=state)


def print_results(console, result, plots: bool) -> None:
    from rich.text import Text

    from taskclock.runtime.summary import (
        BATCH_COLUMNS,
        RANKING_COLUMNS,
        cell_row,
        ranking_row,
        shown_columns,
        table_columns,
        text_plots,
    )
    from taskclock.runtime.tables import LATENCY_COLUMNS, latency_row

    from ..format import figure_table, plain

    for title, keys in CONSOLE_TABLES:
        columns = shown_columns(result.cells, table_columns(*keys))
        console.print(figure_table(title, [column.header for column in columns],
                                   [[plain(value) for value in cell_row(cell, columns)] for cell in result.cells],
                                   names={0, 1}))  # names are outside text
    console.print(figure_table("latency percentiles (ITL per token)",
                               ["model", "task", *(column.header for column in LATENCY_COLUMNS)],
                               [[plain(cell.model), plain(cell.task), *map(plain, latency_row(cell.latency))]
                                for cell in result.cells if cell.latency is not None], names={0, 1}))
    no_cache = all(c.cached_tokens is None for c in result.cells)
    batch = [column for column in BATCH_COLUMNS if not (no_cache and column.key == "cached_tokens")]
    # a mean ± CI keeps its two figures whole on two lines rather than being cut to fit
    rows = [[plain(value) if i < 2 else Text(value.replace(" ± ", "\n± ")) for i, value in enumerate(values)]
            for values in (cell_row(cell, batch) for cell in result.cells)]
    console.print(figure_table("per batch size (set = one pass over the questions; ± = 95% CI over repeats)",
                               [column.short_header for column in batch], rows, names={0, 1}))
    if result.rankings:
        headers = [column.short_header for column in RANKING_COLUMNS]
        console.print(figure_table(
            "rank by decode TPS vs rank by time per task (1 = fastest)", headers,
            [[plain(value) for value in ranking_row(r, narrow=console.width < WIDE_CONSOLE)] for r in result.ranks],
            names={0, 2}, left={1, 8},
            styles=["bold yellow" if r.disagree else None for r in result.ranks]))
        for group in result.rankings:
            console.print(plain(f"verdict: {group.verdict}"), soft_wrap=True)  # whole, to be copied
    if plots and result.rows:
        console.print(text_plots(result, width=min(console.width, 100)), markup=False, highlight=False)
    sys.stdout.flush()
