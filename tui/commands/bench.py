"""`taskclock bench`: replay MMLU task sets over several models, headless, with resumable run folders."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from . import common

DEFAULT_TASKS = "mc,paraphrase,explain"
# Two narrow tables rather than one too wide for a terminal; summary.md has every column in one.
CONSOLE_TABLES = (
    ("speed", ("model", "task", "done", "batch", "TTFT s", "decode tok/s", "task time s (mean)", "p90 task s")),
    ("verbosity and accuracy", ("model", "task", "out tok (mean)", "out tok (median)", "words (mean)", "words/s",
                                "accuracy", "no letter")),
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="replay MMLU task sets over several models and compare task time with tokens/s",
        description="Run the mc / paraphrase / explain task sets over an MMLU sample for each model, append every "
                    "row to runs/<run-id>/results.jsonl, then print the per model × task table and rankings. "
                    "Ctrl-C keeps every finished row; --resume continues the run.")
    common.add_model_options(p, many=True)
    next(a for a in p._actions if a.dest == "models").required = False  # not needed with --resume
    p.add_argument("--tasks", default=DEFAULT_TASKS, help=f"comma-separated task sets (default: {DEFAULT_TASKS})")
    p.add_argument("--mmlu", help="MMLU data folder, or 'hub' for cais/mmlu (default: $TASKCLOCK_MMLU, then config "
                                   "defaults.mmlu, then the copy built into taskclock)")
    p.add_argument("--subjects", default="all", help="comma-separated MMLU subjects, or 'all' (default)")
    p.add_argument("--limit", type=int, default=None, help="questions in the sample (default 660, as in the paper)")
    p.add_argument("--seed", type=int, default=0, help="sample and sampling seed (default 0)")
    p.add_argument("--max-tokens", type=int, help="cap every task's token budget")
    p.add_argument("--batch-size", type=int, default=1,
                   help="requests per batch: a padded batch on transformers models, requests in flight on HTTP "
                        "models (default 1)")
    p.add_argument("--batch-sizes", metavar="B1,B2,...",
                   help="sweep these batch sizes in one run (e.g. 1,2,4,8); overrides --batch-size")
    p.add_argument("--repeats", type=int, default=1,
                   help="run every model × task × batch size N times; report mean, sd and 95%% CI (default 1)")
    p.add_argument("--no-prefix-cache", action="store_true",
                   help="salt every prompt so a server's prefix cache cannot serve replayed prompts")
    p.add_argument("--warmup", type=int, default=1, help="untimed turns per model before measuring (default 1)")
    p.add_argument("--out", help="folder for run folders (default: runs/ in a checkout, else the user data dir)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run folder")
    p.add_argument("--no-plots", action="store_true", help="do not print the text plots at the end")


def _check_numbers(args: argparse.Namespace) -> None:
    from taskclock.runtime.errors import DataError

    for option, value, least in (("--limit", args.limit, 1), ("--max-tokens", args.max_tokens, 1),
                                 ("--batch-size", args.batch_size, 1), ("--warmup", args.warmup, 0),
                                 ("--repeats", args.repeats, 1)):
        if value is not None and value < least:
            raise DataError(f"{option} must be at least {least}, not {value}", f"pass a valid {option}")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def prepare_run(args: argparse.Namespace):
    """A new run folder from the options, or the folder being resumed; returns (folder, plan, data)."""
    from taskclock.runtime import bench, mmlu, tasks
    from taskclock.runtime.config import load_config
    from taskclock.runtime.errors import DataError
    from taskclock.runtime.paths import default_runs_dir

    _check_numbers(args)
    config = load_config(args.config)
    if args.resume:
        folder = Path(args.resume)
        plan = bench.read_plan(folder)
        return folder, plan, mmlu.load(args.mmlu or plan.mmlu)
    if not args.models:
        raise DataError("no models given", "pass --models A,B (or --resume RUN_DIR)")
    specs = common.resolve_specs(common.split_models(args.models), args, config)
    task_list = tasks.resolve(_split(args.tasks), config.tasks)
    data = mmlu.load(mmlu.resolve_path(args.mmlu, config.defaults.mmlu))
    runs_dir = Path(args.out or config.defaults.runs_dir or default_runs_dir())
    folder, plan = bench.prepare(
        models=specs, task_list=task_list, data=data, subjects=_split(args.subjects),
        limit=args.limit or mmlu.DEFAULT_LIMIT, seed=args.seed, batch_size=args.batch_size, warmup=args.warmup,
        max_tokens=args.max_tokens or 0, sampling=config.sampling, runs_dir=runs_dir,
        batch_sizes=bench.parse_batch_sizes(args.batch_sizes, "--batch-sizes") if args.batch_sizes else [],
        repeats=args.repeats,
        no_prefix_cache=args.no_prefix_cache)
    return folder, plan, data


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from taskclock.runtime import bench, summary

    folder, plan, data = prepare_run(args)
    err = Console(stderr=True, soft_wrap=True)  # paths stay whole, so they can be copied
    if data.skipped:
        err.print(f"skipped {len(data.skipped)} malformed MMLU row(s), e.g. {data.skipped[0]}")
    err.print(f"run folder: {folder}  ({len(plan.question_ids)} questions × {len(plan.tasks)} task(s) × "
              f"{len(plan.models)} model(s); batch sizes {', '.join(map(str, plan.sizes()))}; "
              f"{plan.repeats} repeat(s))")
    single = [m.name for m in plan.models if plan.sizes_for(m) != plan.sizes()]
    if single:
        err.print(f"note: {', '.join(single)} run(s) in-process through llama.cpp, one request at a time: "
                  f"measured at batch 1 only", highlight=False)
    cancel = threading.Event()
    with ProgressBars(err) as on_progress:
        runner = bench.BenchRunner(folder, plan, data.by_id(), cancel=cancel, on_progress=on_progress)
        outcome, interrupted = common.run_interruptibly(runner.run, cancel)
    result = summary.load_summary(folder)
    summary.export(folder)
    print_results(Console(), result, plots=not args.no_plots)
    for model, error in result.failures.items():
        err.print(f"[red]model {model} failed:[/] {error}", markup=True, highlight=False)
    errored = [row for row in result.rows if row.get("stop_reason") == "error"]
    if errored:  # the console table leaves the errors column out: say so, or these rows go unnoticed
        err.print(f"{len(errored)} row(s) ended in an error (first: {errored[0]['error']}); they are counted "
                  f"apart from the figures (see the errors column in summary.md)", markup=False, highlight=False)
    if interrupted or outcome.interrupted:
        err.print(f"interrupted: {len(result.rows)} of {plan.total_rows()} rows kept in {folder}\n"
                  f"resume with: taskclock bench --resume {folder}", highlight=False)
        return 130
    err.print(f"results: {folder} (results.jsonl, results.csv, summary.md, summary.json)", highlight=False)
    return 1 if result.failures else 0


class ProgressBars:
    """One rich bar per model × task with ETA; the runner reports from its thread (rich locks updates)."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[state]}"), console=console)
        self.bars: dict[tuple[str, str], int] = {}
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
                self.bars[key] = self.progress.add_task(f"{report.model} · {report.task}", total=report.total,
                                                        completed=report.done, state=report.state)
        state = f"failed: {report.error}" if report.state == "failed" else report.state
        if report.state == "running" and report.batch_size:
            state = f"running at batch {report.batch_size}"
        self.progress.update(self.bars[key], completed=report.done, state=state)


def print_results(console, result, plots: bool) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from taskclock.runtime.summary import BATCH_HEADERS_SHORT, TABLE_COLUMNS, batch_row, cell_row, text_plots

    headers = [header for header, *_ in TABLE_COLUMNS]
    for title, columns in CONSOLE_TABLES:
        keep = [headers.index(column) for column in columns]
        table = Table(title=title, title_justify="left")
        for i in keep:
            table.add_column(headers[i], justify="left" if i < 2 else "right", no_wrap=i < 2)
        for cell in result.cells:
            values = cell_row(cell)
            table.add_row(*(values[i] for i in keep))
        console.print(table)
    per_batch = Table(title="per batch size (set = one pass over the questions; ± = 95% CI over repeats)",
                      title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    rows = [batch_row(cell) for cell in result.cells]
    unused = {BATCH_HEADERS_SHORT.index("cached")} if all(c.cached_tokens is None for c in result.cells) else set()
    keep = [i for i in range(len(BATCH_HEADERS_SHORT)) if i not in unused]
    for i in keep:
        per_batch.add_column(BATCH_HEADERS_SHORT[i], justify="left" if i < 2 else "right", no_wrap=i < 2,
                             overflow="fold")
    for values in rows:
        per_batch.add_row(*(Text(values[i]) for i in keep))
    console.print(per_batch)
    if result.ranks:
        ranks = Table(title="rank by decode TPS vs rank by time per task (1 = fastest)", title_justify="left")
        for header in ("task", "batch", "model", "by decode TPS", "by task time", ""):
            ranks.add_column(header)
        for r in result.ranks:
            ranks.add_row(r.task, str(r.batch_size), r.model, str(r.tps_rank or "—"), str(r.time_rank or "—"),
                          "disagree" if r.disagree else "", style="bold yellow" if r.disagree else None)
        console.print(ranks)
    if plots and result.rows:
        console.print(text_plots(result, width=min(console.width, 100)), markup=False, highlight=False)
    sys.stdout.flush()
