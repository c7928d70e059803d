"""The Batch tab's Load mode: a load run (runtime/load.py) as a live table per model × task set × rate, the
rankings by goodput and by tok/s with the verdict, and the charts of task time and goodput against the rate.

The runner reports into a LiveLoad from its thread; the pane repaints from it on LivePane's throttled timer. A
rate's rows reach the folder only when it ends, so a running rate shows its figures so far from its progress
reports (current rate, requests in flight, task time p50 and p99 from arrival, SLO attainment), and the summary
(load_summary.load_summary) is read again from disk only when a rate has closed.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable, Static

from taskclock.runtime import load_summary
from taskclock.runtime.metrics import figure
from taskclock.runtime.runner import Progress

from ..format import plain
from ..live import LiveLoad

COLUMNS = ("model", "task · rate", "state", "done", "in flight", "task p50 s", "task p99 s", "SLO met", "goodput")
NARROW_COLUMNS = ("model", "task · rate", "done", "p99 s", "SLO", "goodput")
RANK_COLUMNS = load_summary.RANKING_HEADERS


def _seconds(value: float | None) -> str:
    return figure(value, 3)


def fill_table(table: DataTable, live: LiveLoad, *, narrow: bool) -> None:
    """The closed rates from the summary, then every line still running, waiting, stopped or failed from its
    report (a running rate with its figures so far)."""
    table.clear()
    summary = live.current()
    order = {spec.name: i for i, spec in enumerate(live.plan.models)}
    rows: list[tuple[int, int, list]] = []
    for cell in summary.cells:
        state = "saturated" if cell.saturated else "done"
        values = [plain(cell.model), plain(f"{cell.task} @ {cell.rate:g} req/s"), state,
                  f"{cell.finished}/{cell.planned}", str(cell.most_in_flight), _seconds(cell.wait_p50_s),
                  _seconds(cell.wait_p99_s), figure(cell.attainment, percent=True), figure(cell.goodput)]
        rows.append((order.get(cell.model, 0), 0, values))
    for report in live.reports.values():
        if report.state == "done" or (not report.task and report.state != "failed"):
            continue
        shown = live_figures(report)
        state = f"failed: {report.error}" if report.state == "failed" and report.error else report.shown
        values = [plain(report.model), plain(report.task or "—"), plain(state), f"{report.done}/{report.total}",
                  *shown]
        rows.append((order.get(report.model, 0), 1, values))
    rows.sort(key=lambda r: (r[0], r[1]))
    for _, _, values in rows:
        if narrow:  # model, line, done, p99, SLO, goodput
            values = [values[0], values[1], values[3], values[6], values[7], values[8]]
        table.add_row(*values)


def live_figures(report: Progress) -> list[str]:
    """In flight, task p50 and p99 from arrival, SLO attainment so far and goodput (only once the rate ends)."""
    live = report.live or {}
    return [str(live["in_flight"]) if "in_flight" in live else "—", _seconds(live.get("task_p50_s")),
            _seconds(live.get("task_p99_s")), figure(live.get("attainment"), percent=True), "—"]


def show_rankings(table: DataTable, verdicts: Static, summary: load_summary.LoadSummary) -> bool:
    """Goodput and tok/s ranked side by side per task set, and the verdict: what summary.md and the console
    print. Returns whether there are any (two models with closed rates)."""
    table.clear()
    for group in summary.rankings:
        for rank in group.ranks:
            table.add_row(*(plain(v) for v in load_summary.ranking_row(group.task, rank)))
    lines = [plain(f"verdict: {group.verdict}") for group in summary.rankings]
    lines += [plain(f"rate search: {load_summary.search_line(m, t, lo, hi)}")
              for (m, t), (lo, hi) in summary.searches.items()]
    lines += [plain(f"warning: {w}", style="yellow") for w in summary.warnings()]
    verdicts.update(Text("\n").join(lines))
    return bool(summary.rankings or lines)
