"""`taskclock load`: open-loop load on a serving engine at given request rates, against SLOs, per model.

Every peer (vLLM's ``bench serve``, guidellm, aiperf) offers open-loop load with goodput; none of them measures
what taskclock is for, the **task** under load with the model's own verbosity in it: they force fixed output
lengths to take it out. Here each model is sent the same requests on the same arrival schedule (same seed), so a
model that writes more words holds its slots longer and sustains less traffic within the SLO even where it
decodes faster, and the verdict says so (runtime/verdict.py's wording, the Batch tab's form).

Per model, each task set runs at each rate: ``warmup`` requests first (sent on the schedule, never counted),
then the counted ones, bounded by count or duration, sent by the asyncio client (runtime/loadclient.py) at their
arrival times (runtime/arrivals.py), at most ``max_in_flight`` at once. A rate stops early once latency grows
without bound (``Saturation``); its unfinished requests then count as missing the SLO. ``rates auto`` searches
for the highest rate whose SLO attainment reaches ``attainment``: doubling from its start until a rate fails,
then bisecting (as vLLM's SLA sweep does) until the bracket is within AUTO_PRECISION.

Workloads: the MMLU task sets; a fixed input/output length (bench's prompts of exactly N tokens by each model's
own count, M-token replies); a recorded schedule (a session log, or a vLLM / GenAI-Perf result imported with
`taskclock import`) replayed at its arrival times scaled by ``speed``, kept in the run folder as trace.jsonl.

A run folder of the run kit (runtime/runfolder.py, runtime/runner.py): ``run.toml`` (``kind = "load"``),
``results.jsonl`` (one ``load`` row per counted request that ended, in the one turn record's layout, and the
rate's ``segment`` record, which closes it, appended together once the rate ends: a rate cut short by Ctrl-C
leaves nothing and runs again on resume, finished rates stay), ``system.json``. Metrics: docs/METRICS.md
("Load").
"""
from __future__ import annotations

import asyncio
import bisect
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from . import arrivals, bench, mmlu, runfolder, storage, tasks, values
from .backend import LoadedModel, Message, ModelSpec, SamplingParams, load_model
from .backends.http_async import Connections
from .config import TaskSpec
from .errors import DataError
from .events import Done
from .loadclient import LoopOutcome, Sent, open_loop
from .metrics import percentile
from .record import read_turn, turn_fields
from .runfolder import RunResults, check_models, create, new_run_id, row_salt
from .runner import Progress, Runner
from .slo import Slo, attainment, read_slo
from .turn import salted
from .untrusted import safe_line

KIND = "load"
WORKLOADS = ("tasks", "fixed", "trace")
TRACE_FILE = "trace.jsonl"
TRACE_TASK = "trace"
DEFAULT_REQUESTS = 50
DEFAULT_WARMUP = 4
DEFAULT_ATTAINMENT = 0.9
AUTO_PRECISION = 0.1  # the search stops once its bracket is within 10% of the rate that met the SLO
AUTO_MAX_PROBES = 24
LIVE_HZ = 4  # live reports a second while a rate runs (console bars, the Batch tab)
LIVE_KEYS = ("rate", "in_flight", "task_p50_s", "task_p99_s", "attainment")


def round_rate(rate: float) -> float:
    """A rate as the run keys and shows it: four significant digits, so a search's probes are stable keys."""
    return float(f"{rate:.4g}")


def describe_rate(rate: float) -> str:
    return f"{rate:g} req/s"


# ---- the plan ------------------------------------------------------------------------------------

@dataclass
class LoadPlan:
    """A load run's whole configuration, as stored in run.toml."""

    run_id: str
    created: str
    kind: str  # always "load"
    workload: str  # tasks | fixed | trace
    rates: list[float]  # offered rates (req/s); a trace's are its speeds; empty with auto_start
    auto_start: float  # > 0: `--rates auto`, the search's first rate
    arrival: str  # runtime/arrivals.py: poisson | constant | gamma:B (a trace keeps its own times)
    seed: int
    requests: int  # counted requests a rate (0: bounded by duration_s only)
    duration_s: float  # 0: bounded by requests only
    warmup: int  # uncounted requests at the start of every rate
    max_in_flight: int  # 0: no cap
    slo: str  # runtime/slo.py's text, "" for none
    attainment: float  # the share of requests meeting the SLO for a rate to "meet" it
    max_tokens: int  # 0: each task's own budget
    temperature: float
    top_p: float
    mmlu: str
    subjects: list[str]
    limit: int
    input_tokens: int = 0  # the fixed-length workload
    output_tokens: int = 0
    trace_source: str = ""  # the file the trace was read from (its requests are in trace.jsonl)
    prefix_salt: str = ""  # --no-prefix-cache
    models: list[ModelSpec] = field(default_factory=list)
    tasks: list[TaskSpec] = field(default_factory=list)
    question_ids: list[str] = field(default_factory=list)

    @property
    def auto(self) -> bool:
        return self.auto_start > 0

    def slo_bounds(self) -> Slo:
        return read_slo(self.slo)

    def params(self, task: TaskSpec) -> SamplingParams:
        budget = min(task.max_tokens, self.max_tokens) if self.max_tokens else task.max_tokens
        return SamplingParams(max_tokens=budget, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              ignore_eos=self.workload == "fixed")

    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]


def plan_to_toml(plan: LoadPlan) -> str:
    return runfolder.task_plan_toml("taskclock load run: `taskclock load --resume <this folder>` continues it", plan)


def read_plan(folder: Path) -> LoadPlan:
    """The load run's plan; a damaged run.toml, or another kind of run's, is one DataError."""
    path, data = runfolder.read_run_toml(folder, KIND)
    head = runfolder.check_head(path, data.get("run"), LoadPlan, runfolder.PLAN_TABLES)
    try:
        read_slo(head["slo"])
        arrivals.parse_arrival(head["arrival"])
    except DataError as exc:
        raise DataError(f"{path}: {exc.problem}", "start a new run") from None
    if head["workload"] not in WORKLOADS:
        raise DataError(f"{path}: [run] workload must be one of {', '.join(WORKLOADS)}", "start a new run")
    plan = LoadPlan(**head, models=runfolder.read_models(path, data), tasks=runfolder.read_tasks(path, data),
                    question_ids=runfolder.read_selection(path, data))
    runfolder.check_plan_values(path, planned_rows(plan), warmup=plan.warmup, max_tokens=plan.max_tokens or None,
                                input_tokens=plan.input_tokens or None, output_tokens=plan.output_tokens or None,
                                limit=plan.limit or None)
    runfolder.check_sampling(path, plan)
    return plan


def planned_rows(plan: LoadPlan) -> int:
    """The rows the plan's fixed rates may write, where a count bounds them (a duration or a search: unknown)."""
    return len(plan.models) * len(plan.tasks) * len(plan.rates) * plan.requests


def check_http(models: Sequence[ModelSpec]) -> None:
    """Load is what a serving engine meets: every model must be one, reached over HTTP."""
    for spec in models:
        if spec.backend != "http":
            raise DataError(f"taskclock load drives a serving engine over HTTP: {safe_line(spec.name)} is a "
                            f"{spec.backend} model in this process",
                            "serve it (e.g. llama-server -m MODEL.gguf -np 4) and pass its URL, http://HOST:PORT/v1")


def prepare(*, models: list[ModelSpec], rates: list[float], arrival: arrivals.Arrival, seed: int,
            requests: int, duration_s: float, warmup: int, max_in_flight: int, slo: Slo, attainment: float,
            sampling: SamplingParams, max_tokens: int, runs_dir: Path, task_list: Sequence[TaskSpec] = (),
            data: mmlu.MMLUData | None = None, subjects: list[str] | None = None, limit: int = 20,
            input_tokens: int = 0, output_tokens: int = 0, trace: list[dict[str, Any]] | None = None,
            trace_source: str = "", no_prefix_cache: bool = False, auto_start: float = 0.0) -> tuple[Path, LoadPlan]:
    """Check the plan, create the run folder and write run.toml, system.json and (a trace) trace.jsonl.
    ``rates``: the offered rates, or a trace's speeds; ``auto_start`` (in their place): an auto search's first."""
    check_models(models)
    check_http(models)
    auto = auto_start > 0
    if requests < 0 or duration_s < 0 or not (requests or duration_s) or warmup < 0 or max_in_flight < 0:
        raise DataError("a rate needs --requests or --duration (at least 1), --warmup and --max-in-flight at "
                        "least 0", "pass e.g. --requests 50")
    if not math.isfinite(duration_s):
        raise DataError(f"--duration must be a finite number of seconds, not {duration_s}", "pass e.g. --duration 30")
    if not 0 < attainment <= 1:
        raise DataError(f"--attainment must be a share above 0 and at most 1, not {attainment:g}",
                        "pass e.g. --attainment 0.9")
    if auto and not slo:
        raise DataError("--rates auto looks for the highest rate that meets the SLO, and no --slo is given",
                        "pass e.g. --slo task=10")
    ids: list[str]
    if trace is not None:
        workload, task_list, ids = "trace", [TaskSpec(TRACE_TASK, "{question}", max_tokens=max_tokens or 256,
                                                      description=f"requests replayed from {trace_source}")], []
        if auto:
            raise DataError("a trace is replayed at its own times: --rates auto does not apply", "pass --speed")
    elif input_tokens or output_tokens:
        if not (input_tokens > 0 and output_tokens > 0):
            raise DataError("a fixed-length workload needs both --input-tokens and --output-tokens, each at least 1",
                            "pass both, e.g. --input-tokens 512 --output-tokens 128")
        workload, task_list, ids = "fixed", [bench.fixed_task(input_tokens, output_tokens)], []
        no_prefix_cache = True
    else:
        if data is None or not task_list:
            raise DataError("no task sets given", "pass --tasks mc,explain")
        workload = "tasks"
        ids = [q.id for q in mmlu.select(data, subjects, limit, seed)]
    if not auto and not rates:
        raise DataError("no rates given", "pass e.g. --rates 1,2,4 (or auto)")
    plan = LoadPlan(
        run_id=new_run_id(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), kind=KIND, workload=workload,
        rates=[] if auto else [round_rate(r) for r in rates], auto_start=round_rate(auto_start) if auto else 0.0,
        arrival=str(arrival), seed=seed, requests=requests, duration_s=duration_s, warmup=warmup,
        max_in_flight=max_in_flight, slo=str(slo), attainment=attainment, max_tokens=max_tokens,
        temperature=sampling.temperature, top_p=sampling.top_p, mmlu=data.source if data is not None else "",
        subjects=mmlu.pick_subjects(data, subjects) if data is not None and workload == "tasks" else [],
        limit=limit if workload == "tasks" else 0, input_tokens=input_tokens, output_tokens=output_tokens,
        trace_source=trace_source, prefix_salt=secrets.token_hex(4) if no_prefix_cache else "", models=models,
        tasks=list(task_list), question_ids=ids)
    values.check_plan(warmup=warmup, max_tokens=max_tokens or None, input_tokens=input_tokens or None,
                      output_tokens=output_tokens or None, limit=plan.limit or None)
    values.check_rows(planned_rows(plan))
    folder = create(runs_dir, plan.run_id, plan_to_toml(plan))
    if trace is not None:
        storage.write_atomic(folder / TRACE_FILE, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in trace))
    return folder, plan


# ---- a recorded schedule -------------------------------------------------------------------------

MAX_TRACE_REQUESTS = 100_000


def read_trace(path: Path) -> list[dict[str, Any]]:
    """A session log's turns (or an imported vLLM / GenAI-Perf result's requests) as the requests of a trace, each
    ``{"arrival_s", "messages" | "input_tokens", "output_tokens"}``, arrival 0 first. Imported requests keep the
    tool's own send times (``arrival_s``); a session's turns have their logged times. A file that is not a log,
    a turn without a time or a prompt, or times that go back are one DataError."""
    from datetime import datetime

    from .sessions import read_session

    name = safe_line(path)
    records = [read_turn(r) for r in read_session(path)]
    if not records:
        raise DataError(f"{name} holds no turns to replay", "pass a session log, or a result imported with "
                                                            "`taskclock import`")
    if len(records) > MAX_TRACE_REQUESTS:
        raise DataError(f"{name} holds {len(records)} requests, more than {MAX_TRACE_REQUESTS}", "pass a shorter trace")
    entries: list[dict[str, Any]] = []
    times: list[float] = []
    for number, record in enumerate(records, 1):
        arrival = record.get("arrival_s")
        if not isinstance(arrival, (int, float)) or isinstance(arrival, bool):
            try:
                arrival = datetime.fromisoformat(str(record.get("time"))).timestamp()
            except ValueError:
                raise DataError(f"{name}: turn {number} has no time to replay it at", "pass a session log") from None
        if not math.isfinite(arrival):
            raise DataError(f"{name}: turn {number}'s time is not a number", "pass an undamaged log")
        if times and arrival < times[-1]:
            raise DataError(f"{name}: turn {number} arrives at {arrival - times[0]:.3f} s, before turn {number - 1} "
                            f"({times[-1] - times[0]:.3f} s): a schedule's times must not go back",
                            "pass the log in the order its requests were sent")
        times.append(arrival)
        messages = record.get("messages") if isinstance(record.get("messages"), list) else []
        if not messages and isinstance(record.get("prompt"), str) and record["prompt"].strip():
            messages = [{"role": "user", "content": record["prompt"]}]
        entry: dict[str, Any] = {"arrival_s": round(arrival - times[0], 6)}
        output = record.get("output_tokens")
        if messages and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            entry["messages"] = [{"role": str(m.get("role", "user")), "content": m["content"]} for m in messages]
        elif isinstance(record.get("input_tokens"), int) and record["input_tokens"] > 0 and isinstance(output, int) \
                and output > 0:
            entry["input_tokens"] = record["input_tokens"]  # a vLLM result keeps lengths, not prompts
        else:
            raise DataError(f"{name}: turn {number} has neither a prompt nor its input and output lengths",
                            "pass a session log, or a result imported with `taskclock import`")
        if isinstance(output, int) and output > 0:
            entry["output_tokens"] = output
        entries.append(entry)
    return entries


def trace_rate(trace: Sequence[dict[str, Any]]) -> float:
    """A trace's mean arrival rate at speed 1 (requests a second), for showing it beside rates."""
    span = trace[-1]["arrival_s"] - trace[0]["arrival_s"] if trace else 0
    return (len(trace) - 1) / span if span > 0 else 0.0


def read_folder_trace(folder: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in (folder / TRACE_FILE).read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError):
        raise DataError(f"{folder / TRACE_FILE} is missing or damaged: the trace cannot be replayed",
                        "start a new run with --trace") from None


# ---- --rates auto --------------------------------------------------------------------------------

def next_probe(start: float, outcomes: dict[float, bool]) -> tuple[float | None, float | None, float | None]:
    """The search's next rate given the rates it has run (rate → met the SLO), and its bracket (the highest rate
    that met it, the lowest above that failed): doubling from ``start`` while rates pass (halving while they fail),
    then bisecting. The next rate is None once the bracket is within AUTO_PRECISION, or at the rate bounds. A pure
    function of the outcomes, so a resumed run takes up the search where it stopped."""
    low = high = None
    rate = round_rate(start)
    for _ in range(AUTO_MAX_PROBES):
        if low is not None and high is not None:
            if high - low <= AUTO_PRECISION * low:
                return None, low, high
            rate = round_rate((low + high) / 2)
            if rate in (low, high):
                return None, low, high
        if rate not in outcomes:
            return rate, low, high
        if outcomes[rate]:
            low = rate if low is None else max(low, rate)
            if high is None:
                if rate * 2 > arrivals.MAX_RATE:
                    return None, low, high
                rate = round_rate(rate * 2)
        else:
            high = rate if high is None else min(high, rate)
            if low is None:
                if rate / 2 < arrivals.MIN_RATE:
                    return None, low, high
                rate = round_rate(rate / 2)
    return None, low, high


# ---- a rate's run --------------------------------------------------------------------------------

SATURATION_WINDOWS = 4  # medians of this many windows in a row, each higher than the one before
SATURATION_GROWTH = 3.0  # and the last this many times the first window's


class Saturation:
    """Whether a rate's latency grows without bound: the requests' waits from arrival (queue delay + task time),
    in the order they finish, in windows of ``window``; saturated once the medians of the last
    SATURATION_WINDOWS windows each rise, the last is SATURATION_GROWTH times the first window's and a second above
    it. A queue that drains waits long only in bursts; one that cannot, longer with every window."""

    def __init__(self, window: int) -> None:
        self.window = max(window, 5)
        self.waits: list[float] = []
        self.medians: list[float] = []

    def add(self, wait_s: float) -> bool:
        self.waits.append(wait_s)
        if len(self.waits) % self.window:
            return False
        self.medians.append(median(self.waits[-self.window:]))
        recent = self.medians[-SATURATION_WINDOWS:]
        if len(self.medians) <= SATURATION_WINDOWS - 1 or len(recent) < SATURATION_WINDOWS:
            return False
        rising = all(b > a for a, b in zip(recent, recent[1:], strict=False))
        first = self.medians[0]
        return rising and recent[-1] >= SATURATION_GROWTH * first and recent[-1] - first >= 1.0


@dataclass(frozen=True)
class RateLine:
    """A progress line: one task set at one offered rate (``rate`` 0: an auto search not yet done)."""

    task: str
    rate: float


@dataclass
class Request:
    messages: list[Message]
    params: SamplingParams
    question: mmlu.Question | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # the row's own: prompt tokens of a fitted prompt


class LiveRate:
    """A running rate's figures so far, kept by the event loop's thread as requests end (cheap: a sorted list) and
    reported at most LIVE_HZ times a second."""

    def __init__(self, rate: float, warmup: int, planned: int, slo: Slo) -> None:
        self.rate, self.warmup, self.planned, self.slo = rate, warmup, planned, slo
        self.waits: list[float] = []
        self.met = 0
        self.in_flight = 0
        self.last_report = 0.0

    def add(self, wait_s: float, row: dict[str, Any]) -> None:
        bisect.insort(self.waits, wait_s)
        self.met += bool(self.slo) and self.slo.met(row)

    def figures(self) -> dict[str, Any]:
        done = len(self.waits)
        pick = (lambda p: self.waits[min(done - 1, int(p * done))]) if done else (lambda p: None)
        return {"rate": self.rate, "in_flight": self.in_flight, "task_p50_s": pick(0.5), "task_p99_s": pick(0.99),
                "attainment": self.met / done if self.slo and done else None}


class LoadRunner(Runner[RateLine]):
    """Runs a load plan into its folder; safe to call again on the same folder (it resumes). Its progress lines are
    (task set, rate); a rate's rows are written when it ends."""

    kind = KIND
    row_kind = KIND

    def __init__(self, folder: Path, plan: LoadPlan, questions: dict[str, mmlu.Question] | None = None, *,
                 cancel: threading.Event | None = None, on_progress: Callable[[Progress], None] | None = None,
                 loader: Callable[[ModelSpec], LoadedModel] = load_model) -> None:
        super().__init__(folder, plan.models, cancel=cancel, on_progress=on_progress, loader=loader)
        self.plan = plan
        self.slo = plan.slo_bounds()
        self.arrival = arrivals.parse_arrival(plan.arrival)
        questions = questions or {}
        missing = [qid for qid in plan.question_ids if qid not in questions]
        if missing:
            raise DataError(f"{len(missing)} question(s) of this run are not in the MMLU data (e.g. {missing[0]})",
                            "resume with the same MMLU data (--mmlu)")
        self.questions = [questions[qid] for qid in plan.question_ids]
        self.trace = read_folder_trace(folder) if plan.workload == "trace" else []
        self.closed: dict[tuple[str, str, float], dict[str, Any]] = {}
        self.rows: list[dict[str, Any]] = []
        self.live: dict[tuple[str, RateLine], int] = {}  # requests done so far on the line running now

    # ---- the kit's fill-ins ----

    def resume(self, results: RunResults) -> None:
        self.closed = {(s["model"], s["task"], s["rate"]): s for s in results.segments if "rate" in s}
        closed = {s["segment"] for s in self.closed.values()}
        self.rows = [r for r in results.rows if r["segment"] in closed]

    def offered(self, rate: float) -> float:
        """The rate a line offers: itself, or a trace's mean rate at that speed."""
        return round_rate(trace_rate(self.trace) * rate) if self.plan.workload == "trace" else rate

    def outcomes(self, spec: ModelSpec, task: str) -> dict[float, bool]:
        """The auto search's rates run so far for this model and task, and whether each met the SLO."""
        return {rate: meets(self.plan, segment, self._rows_of(segment))
                for (model, name, rate), segment in self.closed.items() if model == spec.name and name == task}

    def _rows_of(self, segment: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["segment"] == segment["segment"]]

    def plan_model(self, spec: ModelSpec) -> list[RateLine]:
        pending: list[RateLine] = []
        for task in self.plan.task_names():
            if self.plan.auto:
                line = RateLine(task, 0.0)
                if next_probe(self.plan.auto_start, self.outcomes(spec, task))[0] is not None:
                    pending.append(line)
                self.report(spec, line, "waiting" if line in pending else "done")
                continue
            for rate in self.plan.rates:
                line = RateLine(task, rate)
                done = (spec.name, task, self.offered(rate)) in self.closed
                if not done:
                    pending.append(line)
                self.report(spec, line, "done" if done else "waiting")
        return pending

    def label(self, line: RateLine) -> str:
        if not line.rate:
            return f"{line.task} · auto"
        if self.plan.workload == "trace":
            return f"{line.task} × {line.rate:g} ({describe_rate(self.offered(line.rate))})"
        return f"{line.task} @ {describe_rate(line.rate)}"

    def progress(self, spec: ModelSpec, line: RateLine) -> tuple[int, int]:
        if not line.rate:
            outcomes = self.outcomes(spec, line.task)
            return len(outcomes), len(outcomes) + (next_probe(self.plan.auto_start, outcomes)[0] is not None)
        planned = len(self.schedule(line.rate)) - self.plan.warmup
        segment = self.closed.get((spec.name, line.task, self.offered(line.rate)))
        done = (segment["finished"] if segment else self.live.get((spec.name, line), 0))
        return done, max(planned, done)

    def run_loaded(self, model: LoadedModel, spec: ModelSpec, lines: list[RateLine]) -> bool:
        if not hasattr(model, "stream_async"):
            raise DataError(f"{safe_line(spec.name)} cannot take open-loop load", "pass an HTTP model")
        for line in lines:
            if self.cancel.is_set():
                return False
            task = next(t for t in self.plan.tasks if t.name == line.task)
            if line.rate:
                if not self._run_rate(model, spec, task, line):
                    return False
                continue
            while (rate := next_probe(self.plan.auto_start, self.outcomes(spec, task.name))[0]) is not None:
                if not self._run_rate(model, spec, task, RateLine(task.name, rate)):
                    return False
            self.report(spec, line, "done")
        return True

    # ---- one rate ----

    def schedule(self, rate: float) -> list[float]:
        """Every request's arrival offset at this rate (a trace: at this speed), the warm-up's first."""
        plan = self.plan
        if plan.workload == "trace":
            return [entry["arrival_s"] / rate for entry in self.trace]
        count = plan.requests + plan.warmup if plan.requests else None
        duration = plan.duration_s + plan.warmup / rate if plan.duration_s else None
        return arrivals.schedule(self.arrival, rate, plan.seed, count=count, duration_s=duration)

    def requests(self, model: LoadedModel, spec: ModelSpec, task: TaskSpec, rate: float,
                 count: int) -> list[Request]:
        """The rate's requests in order (the warm-up's first: the workload's own first requests): a task set's
        questions in turn, prompts of the fixed length, or the trace's; built before the loop starts, since
        fitting a prompt asks the server's tokenizer."""
        plan, params = self.plan, self.plan.params(task)
        if plan.workload == "tasks":
            out = []
            for i in range(count):
                question = self.questions[i % len(self.questions)]
                messages = tasks.messages(task, question, spec.chat)
                if plan.prefix_salt:
                    messages = salted(messages, row_salt(plan.prefix_salt, spec.name, task.name, rate, i))
                out.append(Request(messages, params, question))
            return out
        fitted: dict[int, bench.FixedPrompts] = {}

        def fixed(tokens: int, i: int, sampling: SamplingParams) -> Request:
            prompts = fitted.setdefault(tokens, bench.FixedPrompts(model, tokens, self.cancel))
            messages, got = prompts.prompt(row_salt(plan.prefix_salt or plan.run_id, spec.name, task.name, rate, i))
            return Request(messages, sampling, fields={"prompt_tokens": got, "token_source": prompts.count.source})

        if plan.workload == "fixed":
            return [fixed(plan.input_tokens, i, params) for i in range(count)]
        out = []
        for i, entry in enumerate(self.trace[:count]):
            if "messages" in entry:
                cap = plan.max_tokens or entry.get("output_tokens") or params.max_tokens
                out.append(Request(entry["messages"], params.with_overrides(max_tokens=cap)))
            else:  # lengths only (an imported vLLM result): a prompt of that length, a reply of that length
                out.append(fixed(entry["input_tokens"], i,
                                 params.with_overrides(max_tokens=entry["output_tokens"], ignore_eos=True)))
        return out

    def _run_rate(self, model: LoadedModel, spec: ModelSpec, task: TaskSpec, line: RateLine) -> bool:
        """One rate's open loop, then its rows and its closing record in one write; False when cancelled (nothing
        of the rate is kept: it runs again on resume)."""
        offsets = self.schedule(line.rate)
        warmup = min(self.plan.warmup, len(offsets))
        live = LiveRate(self.offered(line.rate), warmup, len(offsets) - warmup, self.slo)
        self.live[(spec.name, line)] = 0
        self.report(spec, line, "running", note="building prompts" if self.plan.workload != "tasks" else "")
        requests = self.requests(model, spec, task, line.rate, len(offsets))
        saturation = Saturation(max(live.planned // 25, 8))
        segment_id = secrets.token_hex(4)
        rows: dict[int, dict[str, Any]] = {}  # each counted request's row, built as it ends

        def finished(sent: Sent, in_flight: int) -> bool:
            live.in_flight = in_flight
            if sent.index < warmup or sent.answer is None:
                return True
            row = rows[sent.index] = self._row(spec, task, live.rate, segment_id, sent, requests[sent.index],
                                               warmup, offsets[sent.index] - offsets[warmup])
            wait = (row["queue_delay_s"] or 0) + (row["task_time_s"] or 0)
            live.add(wait, row)
            self.live[(spec.name, line)] = len(live.waits)
            now = time.monotonic()
            if now - live.last_report >= 1 / LIVE_HZ:
                live.last_report = now
                self.report(spec, line, "running", live=live.figures())
            return not saturation.add(wait)

        async def drive() -> LoopOutcome:
            connections = Connections(model)  # type: ignore[arg-type]
            stream = model.stream_async  # type: ignore[attr-defined]
            try:
                return await open_loop(offsets, lambda i: stream(connections, requests[i].messages,
                                                                  requests[i].params),
                                       max_in_flight=self.plan.max_in_flight, cancel=self.cancel, on_finished=finished)
            finally:
                connections.close()

        outcome = asyncio.run(drive())
        if outcome.stopped == "cancelled":
            self.live.pop((spec.name, line), None)
            self.report(spec, line, "stopped")
            return False
        counted = [s for s in outcome.finished if s.index >= warmup and s.answer is not None]
        kept = [rows[s.index] for s in sorted(counted, key=lambda s: s.index)]
        record = rate_record(spec, task.name, live.rate, segment_id, self.plan, outcome, counted, warmup,
                             len(offsets) - warmup, offsets)
        self.keep_all(spec, line, kept, record)
        self.closed[(spec.name, task.name, live.rate)] = record
        self.rows += kept
        self.live.pop((spec.name, line), None)
        return True

    def _row(self, spec: ModelSpec, task: TaskSpec, rate: float, segment: str, sent: Sent, request: Request,
             warmup: int, scheduled_s: float) -> dict[str, Any]:
        assert sent.answer is not None
        events = sent.answer.events
        if request.question is not None:
            row = {**bench.make_row(spec, task, request.question, events, 1), "kind": KIND}
            for key in ("batch_size", "repeat"):
                row.pop(key)
        else:
            row = {"kind": KIND, **turn_fields(spec.name, spec.backend, events), "task": task.name,
                   "qid": str(sent.index - warmup)}
        first_byte = sent.answer.first_byte_ns
        done = events[-1]
        timings = done.extra.get("server_timings") if isinstance(done, Done) else None
        return {**row, **request.fields, **({"server_timings": timings} if timings else {}),
                "rate": rate, "segment": segment, "request": sent.index - warmup,
                "scheduled_s": round(scheduled_s, 6), "queue_delay_s": sent.queue_delay_s,
                "schedule_error_ms": sent.schedule_error_ms,
                **({"first_byte_s": (first_byte - events[0].t_ns) / 1e9} if first_byte is not None else {})}


def rate_record(spec: ModelSpec, task: str, rate: float, segment: str, plan: LoadPlan, outcome: LoopOutcome,
                counted: list[Sent], warmup: int, planned: int, offsets: Sequence[float]) -> dict[str, Any]:
    """The segment record that closes a rate: what the open loop did (runfolder.LOAD_SEGMENT_FIELDS)."""
    sent = sorted(s.sent_ns for s in counted if s.sent_ns is not None)
    first_due = outcome.start_ns + round(offsets[warmup] * 1e9) if planned else outcome.start_ns
    ends = [s.answer.events[-1].t_ns for s in counted if s.answer is not None]
    wall = ((max(ends) if ends else first_due) - first_due) / 1e9
    errors = [e for s in counted if (e := s.schedule_error_ms) is not None]
    dropped = sum(1 for s in outcome.dropped if s.index >= warmup)
    return {"kind": "segment", "model": spec.name, "task": task, "segment": segment, "batch_size": None,
            "wall_s": max(wall, 0.0), "rate": rate, "arrival": plan.arrival if plan.workload != "trace" else "trace",
            "planned": planned, "finished": len(counted), "dropped": dropped,
            "unsent": max(planned - len(counted) - dropped, 0), "saturated": outcome.stopped == "saturated",
            "sent_span_s": (sent[-1] - sent[0]) / 1e9 if len(sent) > 1 else 0.0,
            "schedule_p50_ms": percentile(errors, 50) or 0.0, "schedule_p99_ms": percentile(errors, 99) or 0.0,
            "cpu_share": round(outcome.cpu_share or 0.0, 3), "max_in_flight": plan.max_in_flight,
            "most_in_flight": outcome.most_in_flight}


def meets(plan: LoadPlan, segment: dict[str, Any], rows: Sequence[dict[str, Any]]) -> bool:
    """Whether a rate met the SLO: not saturated, and its attainment at least the plan's target."""
    share = attainment(plan.slo_bounds(), rows, segment["planned"])
    return not segment["saturated"] and share is not None and share >= plan.attainment
