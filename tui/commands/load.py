"""`taskclock load`: open-loop load on serving engines at request rates, against SLOs, per model (runtime/load.py)."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from taskclock.runtime.untrusted import error_line, safe_line

from . import common
from .bench import ProgressBars

DEFAULT_TASKS = "mc"
DEFAULT_RATES = "1,2,4"
DEFAULT_LIMIT = 20
# Two narrow tables rather than one too wide for a terminal (LoadCell keys); summary.md has every column in one.
CONSOLE_TABLES = (
    ("waits by rate (from each request's arrival)", ("model", "task", "rate", "achieved_rate", "finished",
                                                     "queue_p99_s", "ttft_wait_p99_s", "wait_p50_s", "wait_p99_s",
                                                     "sat_mark")),
    ("traffic by rate", ("model", "task", "rate", "decode_tps_p50", "output_tps", "mean_output_words",
                         "attainment", "goodput", "schedule_p99_ms", "errors")),
)
# Options fixed in run.toml when a load run starts: --resume refuses them rather than silently ignoring them.
PLAN_OPTIONS = {"models": "--models", "tasks": "--tasks", "mmlu": "--mmlu", "subjects": "--subjects",
                "limit": "--limit", "rates": "--rates", "arrival": "--arrival", "seed": "--seed",
                "requests": "--requests", "duration": "--duration", "warmup": "--warmup",
                "max_in_flight": "--max-in-flight", "slo": "--slo", "attainment": "--attainment",
                "max_tokens": "--max-tokens", "input_tokens": "--input-tokens", "output_tokens": "--output-tokens",
                "trace": "--trace", "speed": "--speed", "no_prefix_cache": "--no-prefix-cache", "out": "--out"}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "load", help="open-loop load on serving engines: request rates, SLOs, goodput, and task time under load",
        description="Send each model (an OpenAI-compatible server: llama-server, vLLM, SGLang, TGI, Ollama) the "
                    "same requests at each offered rate, at their arrival times whether or not earlier ones have "
                    "finished, and measure what their users wait (queue delay, TTFT, per-token ITL, task time), the "
                    "traffic it takes (throughput, SLO attainment, goodput) and which model sustains more within "
                    "the SLO, and why. Ctrl-C keeps every finished rate; --resume continues the run.")
    p.add_argument("--models", help="comma-separated HTTP models: http://HOST:PORT/v1#MODEL or configured names")
    p.add_argument("--config", help="config TOML (default: $TASKCLOCK_CONFIG or the user config dir)")
    p.add_argument("--rates", help=f"offered rates in requests a second, e.g. 0.5,1,2,4 (default {DEFAULT_RATES}); "
                                   "auto (or auto:R, starting at R) finds the highest rate that meets --slo")
    p.add_argument("--arrival", help="poisson (default), constant, or gamma:B (burstiness B: below 1 burstier, "
                                     "as vLLM's --burstiness)")
    p.add_argument("--seed", type=common.whole_number, help="the arrival schedule's seed (default 0; every model "
                                                            "gets the same schedule)")
    p.add_argument("--requests", type=common.whole_number,
                   help="counted requests a rate (default 50 unless --duration is given)")
    p.add_argument("--duration", type=common.number, help="seconds of arrivals a rate (with --requests: the first "
                                                          "bound to come ends the rate)")
    p.add_argument("--warmup", type=common.whole_number,
                   help="uncounted requests at the start of each rate (default 4)")
    p.add_argument("--max-in-flight", type=common.whole_number,
                   help="at most this many requests in flight; the rest wait in the client, as queue delay "
                        "(default: no cap)")
    p.add_argument("--slo", help="service-level objectives from each request's arrival, any of ttft, ttfa, task, "
                                 "itl: e.g. ttft=1,task=10,itl=50ms")
    p.add_argument("--attainment", type=common.number,
                   help="the share of a rate's requests that must meet --slo for the rate to meet it (default 0.9)")
    p.add_argument("--tasks", help=f"comma-separated task sets (default: {DEFAULT_TASKS})")
    p.add_argument("--mmlu", help="MMLU data folder (default: the built-in copy)")
    p.add_argument("--subjects", help="comma-separated MMLU subjects, or 'all' (default)")
    p.add_argument("--limit", type=common.whole_number,
                   help=f"questions the requests cycle through (default {DEFAULT_LIMIT})")
    p.add_argument("--max-tokens", type=common.whole_number, help="cap every task's token budget")
    p.add_argument("--input-tokens", type=common.whole_number, metavar="N",
                   help="a fixed-length workload: prompts of exactly N tokens by each model's tokenizer "
                        "(needs --output-tokens)")
    p.add_argument("--output-tokens", type=common.whole_number, metavar="M",
                   help="with --input-tokens: replies of M tokens (ignore_eos)")
    p.add_argument("--trace", metavar="LOG",
                   help="replay a recorded schedule: a session log, or a vLLM / GenAI-Perf result imported with "
                        "`taskclock import` (its requests at their arrival times)")
    p.add_argument("--speed", help="with --trace: replay at these speeds, e.g. 1,2,4 (default 1)")
    p.add_argument("--no-prefix-cache", action="store_true", default=None,
                   help="salt every prompt so a server's prefix cache cannot serve repeated questions")
    p.add_argument("--out", help="folder for run folders (default: runs/ in a checkout, else the user data dir)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted load run as it was planned")
    p.add_argument("--no-plots", action="store_true", help="do not print the text plots at the end")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def prepare_run(args: argparse.Namespace):
    """A new load run folder from the options, or the folder being resumed; returns (folder, plan, questions)."""
    from taskclock.runtime import arrivals, load, mmlu, tasks
    from taskclock.runtime.backend import SamplingParams
    from taskclock.runtime.config import load_config
    from taskclock.runtime.errors import DataError
    from taskclock.runtime.paths import default_runs_dir
    from taskclock.runtime.slo import Slo, parse_slo

    if args.seed is not None:
        with common.options_named():
            SamplingParams(seed=args.seed)
    for option, value, least in (("--requests", args.requests, 1), ("--warmup", args.warmup, 0),
                                 ("--max-in-flight", args.max_in_flight, 0), ("--limit", args.limit, 1),
                                 ("--max-tokens", args.max_tokens, 1), ("--input-tokens", args.input_tokens, 1),
                                 ("--output-tokens", args.output_tokens, 1)):
        if value is not None and value < least:
            raise DataError(f"{option} must be at least {least}, not {value}", f"pass a valid {option}")
    if args.duration is not None and not 0 < args.duration < float("inf"):
        raise DataError(f"--duration must be a number of seconds above 0, not {args.duration:g}",
                        "pass e.g. --duration 30")
    config = load_config(args.config)
    if args.resume:
        common.refuse_plan_options(args, PLAN_OPTIONS)
        folder = Path(args.resume)
        plan = load.read_plan(folder)
        data = mmlu.load(plan.mmlu or None) if plan.workload == "tasks" else None
        return folder, plan, data.by_id() if data else None
    if not args.models:
        raise DataError("no models given", "pass --models http://HOST:PORT/v1#MODEL,... (or --resume RUN_DIR)")
    slo = parse_slo(args.slo) if args.slo is not None else Slo()
    specs = common.resolve_specs(common.split_models(args.models), args, config)
    trace, auto_start = None, 0.0
    if args.trace:
        if args.rates is not None:
            raise DataError("a trace is replayed at its own arrival times: --rates does not apply", "pass --speed")
        rates = [arrivals.check_rate(s, "--speed") for s in _speeds(args.speed or "1")]
        trace = load.read_trace(Path(args.trace))
    else:
        if args.speed is not None:
            raise DataError("--speed scales a trace's times", "pass it with --trace, or use --rates")
        parsed = arrivals.parse_rates(args.rates or DEFAULT_RATES)
        rates = [] if isinstance(parsed, arrivals.AutoSearch) else parsed
        auto_start = parsed.start if isinstance(parsed, arrivals.AutoSearch) else 0.0
    fixed = args.input_tokens is not None or args.output_tokens is not None
    task_list = [] if fixed or trace is not None else tasks.resolve(_split(args.tasks or DEFAULT_TASKS), config.tasks)
    data = mmlu.load(mmlu.resolve_path(args.mmlu, config.defaults.mmlu)) if task_list else None
    runs_dir = Path(args.out or config.defaults.runs_dir or default_runs_dir())
    requests = args.requests if args.requests is not None else (0 if args.duration else load.DEFAULT_REQUESTS)
    folder, plan = load.prepare(
        models=specs, rates=rates, auto_start=auto_start,
        arrival=arrivals.parse_arrival(args.arrival or "poisson"), seed=args.seed or 0, requests=requests,
        duration_s=args.duration or 0.0, warmup=load.DEFAULT_WARMUP if args.warmup is None else args.warmup,
        max_in_flight=args.max_in_flight or 0, slo=slo,
        attainment=load.DEFAULT_ATTAINMENT if args.attainment is None else args.attainment, sampling=config.sampling,
        max_tokens=args.max_tokens or 0, runs_dir=runs_dir, task_list=task_list, data=data,
        subjects=_split(args.subjects or "all"), limit=args.limit or DEFAULT_LIMIT,
        input_tokens=args.input_tokens or 0, output_tokens=args.output_tokens or 0, trace=trace,
        trace_source=safe_line(Path(args.trace).name) if args.trace else "", no_prefix_cache=bool(args.no_prefix_cache))
    return folder, plan, data.by_id() if data else None


def _speeds(text: str) -> list[float]:
    from taskclock.runtime.errors import DataError

    speeds = []
    for part in _split(text):
        try:
            speeds.append(float(part))
        except ValueError:
            raise DataError(f"--speed: {safe_line(part)!r} is not a number", "pass e.g. --speed 1,2") from None
    if not speeds:
        raise DataError("--speed is empty", "pass e.g. --speed 1,2")
    return list(dict.fromkeys(speeds))


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from taskclock.runtime import load, load_summary, runfolder

    folder, plan, questions = prepare_run(args)
    err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    rates = f"auto from {plan.auto_start:g} req/s" if plan.auto else ", ".join(f"{r:g}" for r in plan.rates)
    err.print(f"run folder: {safe_line(folder)}  ({len(plan.models)} model(s) × {', '.join(plan.task_names())} × "
              f"rates {rates}{' (speeds)' if plan.workload == 'trace' else ''}; SLO {plan.slo or 'none'})")
    cancel = threading.Event()
    with ProgressBars(err) as on_progress:
        runner = load.LoadRunner(folder, plan, questions, cancel=cancel, on_progress=_with_live(on_progress))
        outcome, interrupted = common.run_interruptibly(runner.run, cancel)
    result = load_summary.export(folder)
    if result.rows:
        print_results(Console(), result, plots=not args.no_plots)
    for warning in result.warnings():
        err.print(f"warning: {error_line(warning)}")
    if result.damaged:
        err.print(runfolder.damage_note(result.damaged))
    return common.finish_run(err, "load", safe_line(folder), result.failures, result.rows, result.expected_rows(),
                             interrupted or outcome.interrupted, "they count as missing the SLO",
                             "results.jsonl, results.csv, summary.md, summary.json, plots.txt", result.system)


def _with_live(update):
    """Progress reports with a running rate's figures shown in the bar's state."""
    from dataclasses import replace

    def on_progress(report) -> None:
        if report.live is not None and report.state == "running":
            report = replace(report, note=live_note(report.live))
        update(report)

    return on_progress


def live_note(live: dict) -> str:
    """A running rate as one short line: "3 in flight · task p50 1.20 s p99 2.31 s · SLO 95%"."""
    def seconds(value) -> str:
        return "—" if value is None else f"{value:.2f} s"

    slo = f" · SLO {live['attainment']:.0%}" if live.get("attainment") is not None else ""
    return (f"{live['in_flight']} in flight · task p50 {seconds(live['task_p50_s'])} p99 "
            f"{seconds(live['task_p99_s'])}{slo}")


def print_results(console, result, plots: bool) -> None:
    from taskclock.runtime.load_summary import COLUMNS, RANKING_HEADERS, ranking_row, search_line, text_plots
    from taskclock.runtime.tables import LATENCY_COLUMNS, cell_row, latency_row

    from ..format import figure_table, plain

    for title, keys in CONSOLE_TABLES:
        shown = [c for c in COLUMNS if c.key in keys and (c.key not in ("goodput", "attainment") or result.plan.slo)]
        console.print(figure_table(title, [c.short_header for c in shown],
                                   [[plain(v) for v in cell_row(cell, shown)] for cell in result.cells],
                                   names={0, 1}))
    console.print(figure_table("latency percentiles from each request's send (ITL per token)",
                               ["model", "task", "rate", *(c.header for c in LATENCY_COLUMNS)],
                               [[plain(c.model), plain(c.task), plain(f"{c.rate:g}"),
                                 *map(plain, latency_row(c.latency))] for c in result.cells if c.latency is not None],
                               names={0, 1}))
    for (model, task), (low, high) in result.searches.items():
        console.print(plain(f"rate search: {search_line(model, task, low, high)}"), soft_wrap=True)
    if result.rankings:
        console.print(figure_table("goodput and tok/s side by side (1 = most)", list(RANKING_HEADERS),
                                   [[plain(v) for v in ranking_row(g.task, r)] for g in result.rankings
                                    for r in g.ranks], names={0, 1}))
        for group in result.rankings:
            console.print(plain(f"verdict: {group.verdict}"), soft_wrap=True)
    if plots and result.cells:
        console.print(text_plots(result, width=min(console.width, 100)), markup=False, highlight=False)
    sys.stdout.flush()
