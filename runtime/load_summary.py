"""The summary of a load run (runtime/load.py): per model × task set × rate, the figures its users waited and the
traffic it took; the rankings by goodput and by tok/s side by side and the verdict on them; the console's and
summary.md's tables, the plots of latency and goodput against the rate, and the exports (built on
runtime/tables.py). Metrics: docs/METRICS.md ("Load").
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import metrics, runfolder, tables, verdict
from .load import KIND, LoadPlan, describe_rate, meets, next_probe, read_plan
from .loadclient import CPU_WARN, SCHEDULE_WARN_MS
from .metrics import percentile
from .slo import attainment, goodput, measured
from .tables import LATENCY_COLUMNS, Latency, SummaryColumn, cell_row, latency, latency_row, md_table
from .untrusted import safe_line


@dataclass(frozen=True)
class LoadCell:
    """One model × task set × offered rate: what the open loop did and what its requests' users waited. Waits run
    from each request's scheduled arrival (queue delay + its own figure); ``latency`` is TTFT, ITL and task time
    from when each request was sent."""

    model: str
    task: str
    rate: float  # offered req/s
    achieved_rate: float | None  # requests sent a second
    planned: int
    finished: int
    errors: int
    missed: int  # dropped in flight or never sent (a saturated rate): they count as missing the SLO
    duration_s: float  # first counted arrival to the last request's end
    request_rate: float | None  # finished without an error, a second
    output_tps: float | None  # output tokens a second, all requests together
    goodput: float | None  # requests a second meeting the SLO
    attainment: float | None  # the share of planned requests meeting it
    meets: bool | None  # attainment at least the plan's target, and not saturated (None: no SLO)
    saturated: bool
    queue_p50_s: float | None
    queue_p99_s: float | None
    ttft_wait_p99_s: float | None
    wait_p50_s: float | None  # task time from arrival
    wait_p90_s: float | None
    wait_p99_s: float | None
    ttfa_p50_s: float | None  # reasoning models
    decode_tps_p50: float | None  # the median: one request whose chunks bunched (a client stall) cannot sway it
    mean_output_tokens: float | None
    mean_output_words: float | None
    accuracy: float | None
    schedule_p99_ms: float
    cpu_share: float
    most_in_flight: int
    latency: Latency | None = None

    @property
    def sat_mark(self) -> str:
        return "saturated" if self.saturated else ""


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _values(rows: Sequence[dict[str, Any]], figure: Callable[[dict[str, Any]], float | None]) -> list[float]:
    return [v for row in rows if (v := figure(row)) is not None]


def cell(plan: LoadPlan, segment: dict[str, Any], rows: Sequence[dict[str, Any]], scored: bool) -> LoadCell:
    slo = plan.slo_bounds()
    ok = [r for r in rows if r.get("stop_reason") not in ("error", "cancelled")]
    duration = segment["wall_s"]
    share = attainment(slo, rows, segment["planned"])
    waits = _values(rows, lambda r: measured(r, "task"))
    queue = _values(rows, lambda r: r.get("queue_delay_s"))
    span = segment["sent_span_s"]
    return LoadCell(
        model=segment["model"], task=segment["task"], rate=segment["rate"],
        achieved_rate=(segment["finished"] + segment["dropped"] - 1) / span if span else None,
        planned=segment["planned"], finished=segment["finished"], errors=len(rows) - len(ok),
        missed=segment["dropped"] + segment["unsent"], duration_s=duration,
        request_rate=len(ok) / duration if duration else None,
        output_tps=sum(r["output_tokens"] or 0 for r in ok) / duration if duration else None,
        goodput=goodput(slo, rows, duration), attainment=share,
        meets=meets(plan, segment, rows) if slo else None, saturated=segment["saturated"],
        queue_p50_s=percentile(queue, 50), queue_p99_s=percentile(queue, 99),
        ttft_wait_p99_s=percentile(_values(rows, lambda r: measured(r, "ttft")), 99),
        wait_p50_s=percentile(waits, 50), wait_p90_s=percentile(waits, 90), wait_p99_s=percentile(waits, 99),
        ttfa_p50_s=percentile(_values(rows, lambda r: r.get("ttfa_s")), 50),
        decode_tps_p50=percentile(_values(ok, lambda r: r.get("decode_tps")), 50),
        mean_output_tokens=_mean(_values(ok, lambda r: r.get("output_tokens"))),
        mean_output_words=_mean(_values(ok, lambda r: r.get("output_words"))),
        accuracy=sum(1 for r in ok if r.get("correct")) / len(ok) if scored and ok else None,
        schedule_p99_ms=segment["schedule_p99_ms"], cpu_share=segment["cpu_share"],
        most_in_flight=segment["most_in_flight"] or 0, latency=latency(rows) if rows else None)


@dataclass(frozen=True)
class LoadRank:
    model: str
    sustained_rate: float | None  # the highest rate that met the SLO
    goodput: float | None  # its goodput
    goodput_rank: int  # 0: met the SLO at no rate (or no SLO)
    decode_tps: float | None  # at the lowest rate both ran: the model's own pace, least disturbed by the queue
    tps_rank: int


@dataclass(frozen=True)
class LoadRanking:
    task: str
    ranks: list[LoadRank]
    verdict: str


def pair_key(row: dict[str, Any]) -> tuple:
    """Two models' requests that were the same request: same task, rate and place in the schedule."""
    return row["task"], row["rate"], row["request"]


def _ranks(values: dict[str, float | None]) -> dict[str, int]:
    ranked = sorted(((v, m) for m, v in values.items() if v is not None), key=lambda vm: vm[0], reverse=True)
    return {m: i for i, (_, m) in enumerate(ranked, 1)}


def rankings(plan: LoadPlan, cells: Sequence[LoadCell], rows: Sequence[dict[str, Any]]) -> list[LoadRanking]:
    """Per task set with two models or more: rank 1 = the highest goodput sustained within the SLO, and rank 1 =
    the highest decode tok/s, side by side, with the verdict on them."""
    out = []
    for task in dict.fromkeys(c.task for c in cells):
        mine = [c for c in cells if c.task == task]
        models = list(dict.fromkeys(c.model for c in mine))
        if len(models) < 2:
            continue
        common = sorted(set.intersection(*({c.rate for c in mine if c.model == m} for m in models)))
        low = common[0] if common else None
        sustained = {m: max((c for c in mine if c.model == m and c.meets), key=lambda c: c.rate, default=None)
                     for m in models}
        tps = {m: next((c.decode_tps_p50 for c in mine if c.model == m and c.rate == low), None) for m in models}
        goodput = {m: (s.goodput if s else None) for m, s in sustained.items()}
        by_goodput, by_tps = _ranks(goodput), _ranks(tps)
        ranks = [LoadRank(m, best.rate if (best := sustained[m]) else None, goodput[m], by_goodput.get(m, 0), tps[m],
                          by_tps.get(m, 0)) for m in models]
        ranks.sort(key=lambda r: (r.goodput_rank or len(models) + 1, r.tps_rank or len(models) + 1))
        task_rows = [r for r in rows if r["task"] == task]
        out.append(LoadRanking(task, ranks, _verdict(plan, task, ranks, task_rows, low)))
    return out


def _verdict(plan: LoadPlan, task: str, ranks: list[LoadRank], rows: Sequence[dict[str, Any]],
             low: float | None) -> str:
    """One line in the Batch tab's form: which model sustains more traffic within the SLO and at what tok/s,
    then, at the lowest rate both ran (where the queue disturbs least), which finishes later and why, with the
    run's interval on it (runtime/verdict.py), and the replies cut short."""
    slo = plan.slo_bounds()
    first, second = ranks[0], ranks[1]
    if slo and first.goodput is None:
        head = (f"{task}: no model met the SLO ({slo.phrase()} for {plan.attainment:.0%} of requests) at any rate "
                f"tried")
    elif slo:
        other = f"{second.goodput:.2f} req/s" if second.goodput is not None else "none at any rate tried"
        head = (f"{task}: {first.model} sustains {first.goodput:.2f} req/s of {task} tasks {slo.phrase()} "
                f"(at {describe_rate(first.sustained_rate or 0)}), {second.model} {other}")
        if first.decode_tps and second.decode_tps and second.decode_tps / first.decode_tps >= verdict.MORE:
            head += f" although it decodes {second.decode_tps / first.decode_tps:.1f}× faster"
        if first.sustained_rate == second.sustained_rate:
            head += " (the same highest rate met: the rates tried cannot tell them apart)"
    else:
        head = f"{task}: no --slo, so no goodput to rank by"
    if low is None:
        return head + "; no rate ran for both"
    by_model = {m: [r for r in rows if r["model"] == m and r["rate"] == low] for m in (first.model, second.model)}
    means = {m: _mean(_values(by_model[m], lambda r: r.get("task_time_s"))) or 0.0 for m in by_model}
    later, sooner = sorted(by_model, key=lambda m: means[m] or 0.0, reverse=True)
    paired = verdict.pairs(by_model[later], by_model[sooner], pair_key)
    attribution = verdict.attribute(later, sooner, paired, means[later] - means[sooner])
    line = (head + f"; at {describe_rate(low)} {later} finishes later"
            + verdict.explained(attribution, verdict.task_time_difference(paired), "requests"))
    cap = {t.name: plan.params(t).max_tokens for t in plan.tasks}.get(task)
    for model in (later, sooner):
        cut = verdict.cuts(model, by_model[model], cap)
        if cut.cut:
            line += "; " + cut.phrase()
    return line


@dataclass
class LoadSummary:
    plan: LoadPlan
    rows: list[dict[str, Any]]
    cells: list[LoadCell]
    rankings: list[LoadRanking]
    segments: list[dict[str, Any]]
    failures: dict[str, str]
    damaged: list[str]
    system: dict[str, Any] | None = None
    searches: dict[tuple[str, str], tuple[float | None, float | None]] = field(default_factory=dict)

    def expected_rows(self) -> int:
        """The requests planned at the rates that ran (an auto search's rates are known only as it runs)."""
        return sum(s["planned"] for s in self.segments)

    def warnings(self) -> list[str]:
        """Where the client may have shaped the load rather than measured it, and the rates that saturated."""
        out = []
        for c in self.cells:
            where = f"{c.model} · {c.task} at {describe_rate(c.rate)}"
            if c.schedule_p99_ms > SCHEDULE_WARN_MS:
                out.append(f"{where}: the client's schedule error p99 was {c.schedule_p99_ms:.1f} ms (over "
                           f"{SCHEDULE_WARN_MS:g} ms): it sent late, so this rate's load is partly the client's")
            if c.cpu_share >= CPU_WARN:
                out.append(f"{where}: the client's loop thread was busy {c.cpu_share:.0%} of the time: it was at its "
                           "ceiling (docs/BENCHMARKS.md, Load client)")
            if c.saturated:
                out.append(f"{where}: saturated (latency grew without bound), stopped after {c.finished} of "
                           f"{c.planned} requests; the rest count as missing the SLO")
        return out

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {"run_id": plan.run_id, "kind": KIND, "workload": plan.workload,
                "models": [m.name for m in plan.models], "tasks": plan.task_names(), "rates": plan.rates,
                "auto_start": plan.auto_start or None, "arrival": plan.arrival, "seed": plan.seed, "slo": plan.slo,
                "attainment_target": plan.attainment, "max_in_flight": plan.max_in_flight,
                "rows": len(self.rows), "system": self.system,
                "cells": [asdict(c) for c in self.cells],
                "searches": [{"model": m, "task": t, "highest_met": lo, "lowest_failed": hi}
                             for (m, t), (lo, hi) in self.searches.items()],
                "rankings": [{"task": g.task, "ranks": [asdict(r) for r in g.ranks], "verdict": g.verdict}
                             for g in self.rankings],
                "warnings": self.warnings(), "failed_models": self.failures, "damaged_lines": self.damaged}


def load_summary(folder: Path) -> LoadSummary:
    plan = read_plan(folder)
    results = runfolder.read_results(folder, KIND)
    segments = list({(s["model"], s["task"], s["rate"]): s for s in results.segments if "rate" in s}.values())
    closed = {s["segment"] for s in segments}
    rows = [r for r in results.rows if r["segment"] in closed]
    scored = {t.name: t.scored for t in plan.tasks}
    order = {m.name: i for i, m in enumerate(plan.models)}
    segments.sort(key=lambda s: (order.get(s["model"], 0), plan.task_names().index(s["task"])
                                 if s["task"] in plan.task_names() else 0, s["rate"]))
    cells = [cell(plan, s, [r for r in rows if r["segment"] == s["segment"]], scored.get(s["task"], False))
             for s in segments]
    searches = {}
    if plan.auto:
        for model in plan.models:
            for task in plan.task_names():
                outcomes = {c.rate: bool(c.meets) for c in cells if c.model == model.name and c.task == task}
                if outcomes:
                    _, low, high = next_probe(plan.auto_start, outcomes)
                    searches[(model.name, task)] = (low, high)
    return LoadSummary(plan, rows, cells, rankings(plan, cells, rows), segments, results.failures, results.damaged,
                       runfolder.read_system(folder), searches)


def search_line(model: str, task: str, low: float | None, high: float | None) -> str:
    """What an auto search found, as the console and summary.md say it."""
    if low is None:
        return f"{model} · {task}: no rate met the SLO (the lowest tried: {describe_rate(high or 0)})"
    above = f"; {describe_rate(high)} did not" if high is not None else " (the highest rate tried)"
    return f"{model} · {task}: the highest rate that met the SLO is {describe_rate(low)}{above}"


# The table's columns (LoadCell fields): summary.md's headers, the console's short ones.
COLUMNS = (SummaryColumn("model", "model"), SummaryColumn("task", "task"), SummaryColumn("rate", "rate", 2),
           SummaryColumn("achieved", "achieved_rate", 2, short="sent/s"), SummaryColumn("done", "finished"),
           SummaryColumn("of", "planned"), SummaryColumn("queue p99 s", "queue_p99_s", 3, short="queue p99"),
           SummaryColumn("TTFT p99 s (from arrival)", "ttft_wait_p99_s", 3, short="TTFT p99"),
           SummaryColumn("task p50 s (from arrival)", "wait_p50_s", 3, short="task p50"),
           SummaryColumn("task p99 s (from arrival)", "wait_p99_s", 3, short="task p99"),
           SummaryColumn("decode tok/s p50", "decode_tps_p50", 1, short="decode p50"),
           SummaryColumn("output tok/s (all)", "output_tps", 1, short="out tok/s"),
           SummaryColumn("words", "mean_output_words", 1), SummaryColumn("SLO met", "attainment", percent=True),
           SummaryColumn("goodput req/s", "goodput", 2, short="goodput"),
           SummaryColumn("schedule p99 ms", "schedule_p99_ms", 1, short="sched p99"),
           SummaryColumn("errors", "errors", short="err"), SummaryColumn("saturated", "sat_mark", short="sat"))
RANKING_HEADERS = ("task", "model", "sustained rate", "goodput req/s", "rank by goodput", "decode tok/s",
                   "rank by tok/s")
CSV_COLUMNS = ("model", "backend", "task", "rate", "request", "qid", "scheduled_s", "queue_delay_s",
               "schedule_error_ms", "first_byte_s", "ttft_s", "ttfa_s", "task_time_s", "itl_p50_ms", "itl_p99_ms",
               "decode_tps", "output_tokens", "output_words", "input_tokens", "backend_prefill_s", "correct",
               "stop_reason", "error", "reply")


def ranking_row(task: str, rank: LoadRank) -> list[str]:
    return [task, rank.model, metrics.figure(rank.sustained_rate), metrics.figure(rank.goodput),
            str(rank.goodput_rank or "—"), metrics.figure(rank.decode_tps, 1), str(rank.tps_rank or "—")]


def plot_vs_rate(plt, cells: Sequence[LoadCell], series: Sequence[tuple[str, str]], title: str, ylabel: str) -> None:
    """Figures against the offered rate, one line per model × task × figure (``series``: (LoadCell field, its
    name in the legend))."""
    plt.clear_data()
    lines = [(m, t, key, name) for m, t in dict.fromkeys((c.model, c.task) for c in cells) for key, name in series]
    for i, (model, task, key, name) in enumerate(lines):
        points = [(c.rate, getattr(c, key)) for c in cells if c.model == model and c.task == task
                  and getattr(c, key) is not None]
        if points:
            label = f"{model} · {task}" + (f" · {name}" if len(series) > 1 else "")
            plt.plot([x for x, _ in points], [y for _, y in points], label=safe_line(label),
                     marker=tables.series_marker(i), color=tables.series_color(i))
    plt.title(title)
    plt.xlabel("offered rate (req/s)")
    plt.ylabel(ylabel)


def charts(summary: LoadSummary) -> list[tuple[tuple[tuple[str, str], ...], str, str]]:
    """The plots every view draws: task time from arrival (p50, p99) and goodput (or throughput) vs rate."""
    latency_chart = ((("wait_p50_s", "p50"), ("wait_p99_s", "p99")),
                     "task time from arrival (p50, p99) vs rate", "seconds")
    if summary.plan.slo:
        rate_chart = ((("goodput", "goodput"),), f"goodput vs rate (SLO {summary.plan.slo})", "req/s within SLO")
    else:
        rate_chart = ((("request_rate", "finished"),), "finished requests a second vs rate", "req/s")
    return [latency_chart, rate_chart]


def text_plots(summary: LoadSummary, width: int = 100, height: int = 20) -> str:
    return "\n\n".join(tables.text_chart(plot_vs_rate, summary.cells, series, title, ylabel, width=width,
                                         height=height) for series, title, ylabel in charts(summary))


def summary_markdown(summary: LoadSummary) -> str:
    plan = summary.plan
    parts = tables.markdown_head(f"taskclock load run {plan.run_id}", summary.system)
    rates = f"auto from {describe_rate(plan.auto_start)}" if plan.auto else ", ".join(f"{r:g}" for r in plan.rates)
    bound = " and ".join(b for b in (f"{plan.requests} requests" if plan.requests else "",
                                     f"{plan.duration_s:g} s" if plan.duration_s else "") if b)
    parts += [
        f"- models: {', '.join(m.name + ' (' + m.backend + ')' for m in plan.models)}",
        f"- workload: {plan.workload} ({', '.join(plan.task_names())}); rates: {rates}"
        + (" (speeds of the trace)" if plan.workload == "trace"
           else f" req/s, {plan.arrival} arrivals, seed {plan.seed}"),
        f"- each rate: {bound} counted after {plan.warmup} uncounted warm-up request(s); in flight: "
        f"{plan.max_in_flight or 'no cap'}",
        f"- SLO: {plan.slo or 'none'}" + (f", a rate meets it when {plan.attainment:.0%} of its requests do"
                                          if plan.slo else ""),
        "",
        "## By rate",
        "",
        "Waits run from each request's scheduled arrival (queue delay + the figure); decode tok/s is the median and "
        "words the mean over the finished requests; output tok/s is every request's tokens over the rate's duration.",
        "",
        md_table([column.header for column in COLUMNS], (cell_row(c, COLUMNS) for c in summary.cells)),
        "",
        "## Latency percentiles (from each request's send)",
        "",
        md_table(["model", "task", "rate", *(column.header for column in LATENCY_COLUMNS)],
                 ([c.model, c.task, f"{c.rate:g}", *latency_row(c.latency)] for c in summary.cells
                  if c.latency is not None)),
    ]
    if summary.searches:
        parts += ["", "## Rate search", ""] + [f"- {search_line(m, t, lo, hi)}"
                                               for (m, t), (lo, hi) in summary.searches.items()]
    if summary.rankings:
        parts += ["", "## Goodput and tok/s side by side", "",
                  md_table(RANKING_HEADERS, (ranking_row(g.task, r) for g in summary.rankings for r in g.ranks)),
                  "", "## Verdict", ""] + [f"- {g.verdict}" for g in summary.rankings]
    if warnings := summary.warnings():
        parts += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    parts += tables.closing_sections(summary.failures, summary.damaged, text_plots(summary) if summary.cells else "")
    return "\n".join(parts) + "\n"


def export(folder: Path) -> LoadSummary:
    """Write results.csv, summary.md, summary.json and plots.txt into the run folder (atomically)."""
    summary = load_summary(folder)
    tables.write_exports(folder, summary, tables.results_csv(summary.rows, CSV_COLUMNS), summary_markdown(summary),
                         text_plots(summary) if summary.cells else "")
    return summary
