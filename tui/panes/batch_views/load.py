"""The Batch tab's Load mode: `taskclock load` interactively, open-loop request rates on HTTP models against an
SLO (runtime/load.py). A table per model × task × rate with the running rate's figures live (requests in flight,
task time p50 and p99 from arrival, SLO attainment so far), goodput and tok/s ranked side by side with the
verdict once a rate has closed, and the charts of task time and goodput against the rate."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from textual.widget import Widget
from textual.widgets import DataTable, Static

from taskclock.runtime import arrivals, load, load_summary, mmlu, tasks
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.runner import Outcome

from ...fields import plan_number
from ...live import LiveLoad
from ...widgets import load_table
from ...widgets.chart import SizedPlot
from ...widgets.columns import set_columns
from . import BatchView, Listing, Opened, StartRun
from .tasks import DEFAULT_LIMIT

# (label, field id, default)
FIELDS = (("tasks", "load-tasks", "mc"), ("rates (req/s, or auto)", "load-rates", "1,2,4"),
          ("requests a rate", "load-requests", "20"), ("SLO", "load-slo", "task=10"),
          ("arrivals", "load-arrival", "poisson"))
CHARTS = ("load-wait", "load-goodput")

Prepared = tuple[Path, load.LoadPlan, dict[str, mmlu.Question]]


def rates_text(plan: load.LoadPlan) -> str:
    return f"auto from {plan.auto_start:g}" if plan.auto else ",".join(f"{r:g}" for r in plan.rates)


class LoadView(BatchView[LiveLoad]):
    KIND = load.KIND
    TITLE = "Load"

    # ---- widgets ------------------------------------------------------------------------------------

    def fields(self) -> Iterable[Widget]:
        for label, field_id, default in FIELDS:
            yield self.field(label, field_id, default)

    def results(self) -> Iterable[Widget]:
        self.table = DataTable(id="load-table", zebra_stripes=True, cursor_type="row", classes="batch-run-table")
        self.table.add_columns(*load_table.COLUMNS)
        yield self.table
        self.ranks: DataTable = DataTable(id="load-ranks", zebra_stripes=True, classes="load-thesis")
        self.ranks.add_columns(*load_table.RANK_COLUMNS)
        yield self.ranks
        self.verdict = Static("", id="load-verdict", classes="load-thesis")
        yield self.verdict

    def charts(self) -> Iterable[Widget]:
        self.plots = [SizedPlot(id=chart, classes="batch-chart") for chart in CHARTS]
        yield from self.plots

    def set_narrow(self, narrow: bool) -> None:
        super().set_narrow(narrow)
        set_columns(self.table, load_table.NARROW_COLUMNS if narrow else load_table.COLUMNS)

    # ---- runs ---------------------------------------------------------------------------------------

    def start(self, specs: list[ModelSpec], runs_dir: Path) -> StartRun:
        """Its options checked here as `taskclock load` checks them."""
        from taskclock.runtime.slo import Slo, parse_slo

        load.check_http(specs)
        task_list = tasks.resolve([t.strip() for t in self.value("load-tasks").split(",") if t.strip()],
                                  self.context.config.tasks)
        rates = arrivals.parse_rates(self.value("load-rates"))
        requests = plan_number(self.value("load-requests"), "limit")
        slo = parse_slo(self.value("load-slo")) if self.value("load-slo") else Slo()
        arrival = arrivals.parse_arrival(self.value("load-arrival") or "poisson")
        params = self.context.settings.chat.params
        auto = rates.start if isinstance(rates, arrivals.AutoSearch) else 0.0
        rate_list = [] if isinstance(rates, arrivals.AutoSearch) else rates

        def prepare() -> Prepared:
            data = mmlu.load(None)
            folder, plan = load.prepare(
                models=specs, rates=rate_list, auto_start=auto, arrival=arrival, seed=params.seed,
                requests=requests, duration_s=0.0, warmup=load.DEFAULT_WARMUP, max_in_flight=0, slo=slo,
                attainment=load.DEFAULT_ATTAINMENT, sampling=params, max_tokens=0, runs_dir=runs_dir,
                task_list=task_list, data=data, limit=DEFAULT_LIMIT)
            return folder, plan, data.by_id()

        return self._run(prepare)

    def resume(self, folder: Path) -> StartRun:
        def prepare() -> Prepared:
            plan = load.read_plan(folder)
            return folder, plan, mmlu.load(plan.mmlu or None).by_id() if plan.workload == "tasks" else {}

        return self._run(prepare)

    def _run(self, prepare: Callable[[], Prepared]) -> StartRun:
        loader = self.context.loader

        def start(cancel: threading.Event) -> tuple[LiveLoad, Callable[[], Outcome]]:
            folder, plan, questions = prepare()
            live = LiveLoad.of_folder(folder, plan)
            live.running = True
            runner = load.LoadRunner(folder, plan, questions, cancel=cancel, on_progress=live.record, loader=loader)
            return live, runner.run

        return start

    def export(self, folder: Path) -> object:
        return load_summary.export(folder)

    def started(self, live: LiveLoad) -> str:
        return (f"running {live.folder.name}: rates {rates_text(live.plan).replace(',', ', ')} req/s × "
                f"{', '.join(live.plan.task_names())} × {len(live.plan.models)} model(s); "
                f"SLO {live.plan.slo or 'none'}")

    def listed(self, folder: Path) -> Listing:
        result = load_summary.load_summary(folder)
        what = ",".join(result.plan.task_names()) + " @ " + rates_text(result.plan)
        return Listing(result.plan.models, what, len(result.rows), result.expected_rows())

    # ---- showing a run ------------------------------------------------------------------------------

    def open(self, folder: Path) -> LiveLoad:
        return LiveLoad.of_folder(folder, load.read_plan(folder))

    def opened(self, live: LiveLoad) -> Opened:
        """Rates closed, not rows: a fixed-rate plan is complete when every model × task × rate has closed, a
        rate search when every model × task's search has ended."""
        plan, cells = live.plan, live.current().cells
        if plan.auto:
            incomplete = any(load.next_probe(plan.auto_start, {c.rate: bool(c.meets) for c in cells
                                                               if (c.model, c.task) == key})[0] is not None
                             for key in ((m.name, t) for m in plan.models for t in plan.task_names()))
        else:
            incomplete = len(cells) < len(plan.models) * len(plan.tasks) * len(plan.rates)
        closed = {(c.model, c.task) for c in cells}
        return Opened(f"{len(cells)} rate(s) done over {len(closed)} model × task", incomplete)

    def repaint(self, live: LiveLoad) -> None:
        """The table per model × task × rate (a running rate's figures so far), the rankings by goodput and
        tok/s with the verdict, and both charts against the rate."""
        load_table.fill_table(self.table, live, narrow=self.narrow)
        result = live.current()
        shown = load_table.show_rankings(self.ranks, self.verdict, result)
        for widget in (self.ranks, self.verdict):
            widget.set_class(shown, "-shown")
        for plot, (series, title, ylabel) in zip(self.plots, load_summary.charts(result), strict=True):
            plot.draw(load_summary.plot_vs_rate, result.cells, series, title, ylabel)
