"""The bench runner: replay task sets over an MMLU selection for several models, one row per answer.

A run lives in ``runs/<run-id>/``: ``run.toml`` (everything needed to repeat or resume it, including the
question ids and the task templates) and ``results.jsonl`` (one record per completed row, appended and
fsynced as it completes) and ``system.json`` (the machine). A run may sweep several batch sizes and repeat
each cell: a row's key is (model, task, question id, batch size, repeat). A killed run loses only the rows
in flight; resuming reads the done keys and runs exactly the rest.

Batch size means what each backend can do: transformers models run padded batches of that many prompts;
HTTP models keep that many requests in flight until the set is done (``vllm bench serve
--max-concurrency``); llama.cpp in-process models run one request at a time, so they run only at batch 1.
A batched or concurrent stretch appends a ``segment`` record with its wall time, so the set's total time
is wall time, not a sum of overlapping task times.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from . import fitting, metrics, mmlu, runfolder, storage, system, tasks, values
from .backend import (
    BatchingModel,
    LoadedModel,
    Message,
    ModelSpec,
    SamplingParams,
    load_model,
    supports_batching,
    supports_concurrency,
)
from .config import TaskSpec
from .errors import Cancelled, DataError, TaskclockError
from .events import Event
from .runfolder import RESULTS_FILE, RUN_FILE, RunPlan, row_key
from .turn import run_turn, salted, warm_up, warm_up_note, warm_up_params, warm_up_prompt, with_system
from .untrusted import redact, redact_url

SYSTEM_FILE = "system.json"


def row_salt(run_salt: str, *parts: object) -> str:
    """A request's salt: unique per run and row, and the same again when the run is resumed."""
    return hashlib.sha256(":".join(map(str, (run_salt, *parts))).encode()).hexdigest()[:12]


# ---- run.toml: a small writer for the flat values a plan holds (tomllib only reads) ----------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_table(header: str, values: dict[str, Any]) -> str:
    """TOML has no null: a None (a setting left to be worked out at load, like n_gpu_layers) is left out and
    reads back as its default."""
    lines = [f"[{header}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()
                               if v is not None and not isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def models_toml(models: Sequence[ModelSpec]) -> list[str]:
    """One [models.NAME] table per model, with every option (runtime/runfolder.read_models reads them)."""
    parts = []
    for spec in models:
        values = {k: v for k, v in asdict(spec).items() if k not in ("name", "options")}
        values["source"] = redact_url(spec.source)  # a URL's password is never stored (docs/RELIABILITY.md)
        parts.append(toml_table(f"models.{json.dumps(spec.name)}", values))
    return parts


def plan_to_toml(plan: RunPlan) -> str:
    head = {f.name: getattr(plan, f.name) for f in fields(plan) if f.name not in ("models", "tasks", "question_ids")}
    parts = ["# taskclock bench run: `taskclock bench --resume <this folder>` continues it\n", toml_table("run", head),
             *models_toml(plan.models)]
    for task in plan.tasks:
        parts.append(toml_table(f"tasks.{json.dumps(task.name)}",
                                {k: v for k, v in asdict(task).items() if k != "name"}))
    parts.append(toml_table("selection", {"ids": plan.question_ids}))
    return "\n".join(parts)


def read_system(folder: Path) -> dict[str, Any] | None:
    try:
        system_block = storage.read_json(folder / SYSTEM_FILE, "system file")
    except DataError:
        return None
    return system_block if isinstance(system_block, dict) else None


def threads_used(models: Sequence[ModelSpec]) -> dict[str, int]:
    """CPU threads per in-process model (HTTP models run on their server's threads)."""
    return {m.name: m.threads if m.threads > 0 else system.physical_cores()
            for m in models if m.backend != "http"}


def write_plan(folder: Path, plan: RunPlan) -> None:
    storage.write_atomic(folder / RUN_FILE, plan_to_toml(plan))


def write_system(folder: Path, models: Sequence[ModelSpec]) -> None:
    """system.json: the machine a run measures, with the threads each in-process model runs on."""
    storage.write_atomic(folder / SYSTEM_FILE, json.dumps(system.system_block(threads_used(models)), indent=2) + "\n")


def add_load(folder: Path, load: dict[str, Any]) -> None:
    """Append one run session's machine load to system.json's ``load`` list (a resumed run adds its own)."""
    block = read_system(folder) or {}
    block["load"] = [*(block.get("load") or []), load]
    storage.write_atomic(folder / SYSTEM_FILE, json.dumps(block, indent=2) + "\n")


@contextlib.contextmanager
def watching_load(folder: Path, models: Sequence[ModelSpec]) -> Iterator[None]:
    """The machine's other work before and during the block, kept in the folder's system.json; a local server
    the models are served from is the measurement, not other work."""
    watch = system.LoadWatch.for_models(models)
    watch.started()
    try:
        yield
    finally:
        watch.finished()
        add_load(folder, watch.record())


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


# ---- the fixed-length workload -------------------------------------------------------------------

FIXED_TASK = "fixed"
FIXED_QUESTION = "Write on from where the text above stops."


def fixed_task(input_tokens: int, output_tokens: int) -> TaskSpec:
    return TaskSpec(FIXED_TASK, "{question}", max_tokens=output_tokens,
                    description=f"{input_tokens} input tokens by each model's own count, {output_tokens} output tokens")


class FixedPrompts:
    """One model's prompts of exactly ``tokens`` input tokens (runtime/fitting.py), each under its own salt so no
    cache has seen it; the context's cut is kept and only refitted when a salt makes the count differ."""

    def __init__(self, model: LoadedModel, tokens: int, cancel: threading.Event) -> None:
        self.count = fitting.token_counter(model, cancel)
        self.filler = fitting.filler_text()
        self.tokens = tokens
        self.cut: tuple[int, int] | None = None

    def prompt(self, salt: str) -> tuple[list[Message], int]:
        """The prompt and its token count (below ``tokens`` only where no cut hits the count exactly)."""
        if self.cut is not None:
            messages = fitting.prompt(self.filler, *self.cut, FIXED_QUESTION, salt)
            if self.count(messages) == self.tokens:
                return messages, self.tokens
        fitted = fitting.fit_text(self.count, self.filler, self.tokens, FIXED_QUESTION, salt)
        if isinstance(fitted, str):
            raise DataError(f"no prompt of {self.tokens} tokens: {fitted}", "pass another --input-tokens")
        start, cut, tokens = fitted
        self.cut = start, cut
        return fitting.prompt(self.filler, start, cut, FIXED_QUESTION, salt), tokens


# ---- the runner ----------------------------------------------------------------------------------

@dataclass
class Progress:
    """What the runner reports after every row and state change (CLI bars, Batch tab table). ``done`` and
    ``total`` count the model × task's rows over every batch size and repeat; ``batch_size`` is the size
    running now (0 before any runs)."""

    model: str
    task: str
    done: int
    total: int
    state: str  # loading | warmup | running | done | failed | stopped
    row: dict[str, Any] | None = None
    error: str = ""
    batch_size: int = 0
    note: str = ""  # what the state means now, for the console and the tab ("warming up (…)")

    @property
    def shown(self) -> str:
        """The state as the console and the Batch tab say it."""
        return self.note or self.state


@dataclass
class Outcome:
    rows_written: int = 0
    interrupted: bool = False
    failures: dict[str, str] = field(default_factory=dict)


def cached_prompt_tokens(done: Any) -> int | None:
    """Prompt tokens a server served from its prefix cache, where it reports them."""
    extra = getattr(done, "extra", None) or {}
    return extra.get("cached_prompt_tokens")


def load_for_run(loader: Callable[[ModelSpec], LoadedModel], spec: ModelSpec) -> tuple[LoadedModel | None, str]:
    """The model, or None and why it failed to load: in a run, a broken model fails its own rows and must not
    end the other models' runs."""
    try:
        return loader(spec), ""
    except TaskclockError as exc:
        return None, str(exc)
    except Exception as exc:  # anything a backend raises: reported as its type and message
        return None, f"{type(exc).__name__}: {exc}"


def turn_row(spec: ModelSpec, events: Sequence[Event]) -> dict[str, Any]:
    """What every run-folder row holds of a turn: the model, its figures, the reply (the answer only: a reasoning
    model's thinking is kept apart and never scored) and the token offsets."""
    done = events[-1] if events else None
    extra = getattr(done, "extra", None) or {}
    return {
        "model": spec.name,
        "backend": spec.backend,
        **metrics.compute(events).as_dict(),
        "cached_tokens": cached_prompt_tokens(done),
        "threads": extra.get("threads"),
        "error": getattr(done, "error", None),
        "reply": metrics.answer_text(events),
        **({"thinking": metrics.thinking_text(events), "thinking_arrivals": metrics.thinking_arrivals(events)}
           if metrics.thought(events) else {}),
        "token_offsets_ms": metrics.token_offsets_ms(events),  # so `taskclock replay` can re-stream the row
        **metrics.counts_field(events),
    }


def make_row(spec: ModelSpec, task: TaskSpec, question: mmlu.Question, events: Sequence[Event],
             batch_size: int, repeat: int = 0) -> dict[str, Any]:
    row = turn_row(spec, events)
    parsed = tasks.extract_letter(row["reply"], question.choices) if task.scored else None
    return {
        "kind": "result",
        **row,
        "task": task.name,
        "qid": question.id,
        "subject": question.subject,
        "batch_size": batch_size,
        "repeat": repeat,
        "parsed": parsed,
        "answer": question.answer if task.scored else None,
        "correct": (parsed == question.answer) if task.scored else None,
    }


def batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class Cell:
    """One task at one batch size in one repeat: the unit the runner resumes."""

    task: TaskSpec
    batch_size: int
    repeat: int


class Pending(dict[Cell, list]):
    """A model's questions still to run, per cell, with the rows planned and left per task counted as they change:
    a progress report after each row then costs nothing, where rescanning a plan of PLAN_ROWS_MAX rows for every
    row would take hours."""

    def __init__(self) -> None:
        super().__init__()
        self.total: Counter[str] = Counter()
        self.left: Counter[str] = Counter()

    def add(self, cell: Cell, planned: int, left: list) -> None:
        self[cell] = left
        self.total[cell.task.name] += planned
        self.left[cell.task.name] += len(left)

    def finish(self, cell: Cell, question: mmlu.Question) -> None:
        self[cell].remove(question)
        self.left[cell.task.name] -= 1


class BenchRunner:
    """Runs a plan into a folder; safe to call again on the same folder (it resumes)."""

    def __init__(self, folder: Path, plan: RunPlan, questions: dict[str, mmlu.Question], *,
                 cancel: threading.Event | None = None, on_progress: Callable[[Progress], None] | None = None,
                 loader: Callable[[ModelSpec], LoadedModel] = load_model) -> None:
        missing = [qid for qid in plan.question_ids if qid not in questions]
        if missing:
            raise DataError(f"{len(missing)} question(s) of this run are not in the MMLU data (e.g. {missing[0]})",
                            "resume with the same MMLU data (--mmlu)")
        self.folder = folder
        self.plan = plan
        self.questions = [questions[qid] for qid in plan.question_ids]
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress or (lambda progress: None)
        self.loader = loader
        self.results = folder / RESULTS_FILE
        self.lock = threading.Lock()  # concurrent requests append rows from several threads
        self.fixed: FixedPrompts | None = None  # the model running now's, in a fixed-length run
        self.fitted: dict[str, dict[str, Any]] = {}  # question id → what its fixed-length prompt held

    def cells(self, spec: ModelSpec) -> Iterator[Cell]:
        """Sizes in sweep order, each size's repeats, each repeat's tasks."""
        return (Cell(task, size, repeat) for size in self.plan.sizes_for(spec)
                for repeat in range(self.plan.repeats) for task in self.plan.tasks)

    def pending(self, spec: ModelSpec, done: set[tuple]) -> Pending | None:
        """The model's rows still to run, planned when the model's turn comes, a cell at a time; None when the
        cancel flag is set meanwhile (Ctrl-C stops a large plan at once, not after it is built)."""
        pending = Pending()
        for cell in self.cells(spec):
            if self.cancel.is_set():
                return None
            key = (spec.name, cell.task.name)
            pending.add(cell, len(self.questions),
                        [q for q in self.questions if (*key, q.id, cell.batch_size, cell.repeat) not in done])
        return pending

    def run(self) -> Outcome:
        """Run every pending row, holding the folder's lock (a second runner on it is refused)."""
        with runfolder.locked(self.folder), watching_load(self.folder, self.plan.models):
            return self._run_pending()

    def _run_pending(self) -> Outcome:
        done = {row_key(r) for r in runfolder.read_results(self.folder).rows}
        outcome = Outcome()
        for spec in self.plan.models:
            if self.cancel.is_set():
                outcome.interrupted = True
                break
            pending = self.pending(spec, done)
            if pending is None:
                break
            for task in self.plan.tasks:
                self._report(spec, task, pending, "done" if not self._left(task, pending) else "waiting")
            if not any(pending.left.values()):
                continue
            self._run_model(spec, pending, outcome)
        outcome.interrupted = outcome.interrupted or self.cancel.is_set()
        return outcome

    @staticmethod
    def _left(task: TaskSpec, pending: Pending) -> int:
        return pending.left[task.name]

    def _report(self, spec: ModelSpec, task: TaskSpec, pending: Pending, state: str,
                row: dict | None = None, error: str = "", batch_size: int = 0, note: str = "") -> None:
        total = pending.total[task.name]
        self.on_progress(Progress(spec.name, task.name, total - self._left(task, pending), total, state, row, error,
                                  batch_size, note))

    def _fail(self, spec: ModelSpec, pending: Pending, error: str, outcome: Outcome) -> None:
        error = redact(error)
        storage.append(self.results, {"kind": "failure", "model": spec.name, "error": error})
        outcome.failures[spec.name] = error
        for task in self.plan.tasks:
            if self._left(task, pending):
                self._report(spec, task, pending, "failed", error=error)

    def _run_model(self, spec: ModelSpec, pending: Pending, outcome: Outcome) -> None:
        first = next(cell for cell, left in pending.items() if left)
        self._report(spec, first.task, pending, "loading")
        model, error = load_for_run(self.loader, spec)
        if model is None:
            self._fail(spec, pending, error, outcome)
            return
        try:
            if self.plan.input_tokens:
                reason = fitting.beyond_context(self.plan.input_tokens, self.plan.output_tokens,
                                                model.context_size(self.cancel))
                if reason:
                    self._fail(spec, pending, reason, outcome)
                    return
                self.fixed = FixedPrompts(model, self.plan.input_tokens, self.cancel)
            self._warm_up(model, spec, first.task, pending)
            for cell, left in pending.items():
                if not left:
                    continue
                if not self._run_cell(model, spec, cell, pending, outcome):
                    outcome.interrupted = True
                    self._report(spec, cell.task, pending, "stopped")
                    return
                if not self._left(cell.task, pending):
                    self._report(spec, cell.task, pending, "done")
        except Cancelled:  # Ctrl-C while a fixed-length prompt was being fitted: nothing to record
            outcome.interrupted = True
            self._report(spec, first.task, pending, "stopped")
        except TaskclockError as exc:  # a fixed-length prompt that cannot be fitted, a tokenizer that stopped
            self._fail(spec, pending, str(exc), outcome)
        finally:
            self.fixed = None
            model.close()

    def _warm_up(self, model: LoadedModel, spec: ModelSpec, task: TaskSpec, pending: Pending) -> None:
        """Untimed turns (on a prompt of their own) so the first measured row does not pay the one-time costs.
        A model that runs padded batches then runs one untimed batch at each batch size it has rows left in:
        each new batch shape has set-up costs of its own (larger buffers, kernels chosen for the shape) that
        would otherwise land in that size's first timed batch."""
        if self.plan.warmup <= 0:
            return
        self._report(spec, task, pending, "warmup", note=f"warming up ({warm_up_note(self.plan.warmup)})")
        params = self.plan.params(task)
        warm_up(model, params, self.plan.warmup, cancel=self.cancel)
        if supports_concurrency(spec) or not supports_batching(spec):
            return
        for size in sorted({cell.batch_size for cell, left in pending.items() if left and cell.batch_size > 1}):
            if self.cancel.is_set():
                return
            cast(BatchingModel, model).stream_batch([warm_up_prompt() for _ in range(size)], warm_up_params(params),
                                                    self.cancel)

    def _prompt(self, spec: ModelSpec, cell: Cell, question: mmlu.Question) -> list[Message]:
        salt = row_salt(self.plan.prefix_salt, spec.name, cell.task.name, question.id, cell.batch_size, cell.repeat)
        if self.fixed is not None:
            messages, tokens = self.fixed.prompt(salt)
            self.fitted[question.id] = {"prompt_tokens": tokens, "token_source": self.fixed.count.source}
            return messages
        messages = with_system(self.plan.system, tasks.messages(cell.task, question, spec.chat))
        return salted(messages, salt) if self.plan.prefix_salt else messages

    def _keep(self, spec: ModelSpec, cell: Cell, pending: Pending, question: mmlu.Question,
              events: Sequence[Event], outcome: Outcome, timing: dict[str, Any] | None = None) -> None:
        row = {**make_row(spec, cell.task, question, events, cell.batch_size, cell.repeat), **(timing or {}),
               **self.fitted.get(question.id, {})}
        with self.lock:
            storage.append(self.results, row)
            outcome.rows_written += 1
            pending.finish(cell, question)
            self._report(spec, cell.task, pending, "running", row, batch_size=cell.batch_size)

    def _segment(self, spec: ModelSpec, cell: Cell, segment: str, rows: int, wall_ns: int) -> None:
        if rows:
            storage.append(self.results, {"kind": "segment", "model": spec.name, "task": cell.task.name,
                                          "batch_size": cell.batch_size, "repeat": cell.repeat, "segment": segment,
                                          "rows": rows, "wall_s": wall_ns / 1e9})

    def _run_cell(self, model: LoadedModel, spec: ModelSpec, cell: Cell, pending: Pending,
                  outcome: Outcome) -> bool:
        """Run the cell's pending questions; False when cancelled (rows in flight are dropped)."""
        self._report(spec, cell.task, pending, "running", batch_size=cell.batch_size)
        if cell.batch_size > 1 and supports_concurrency(spec):
            return self._run_concurrent(model, spec, cell, pending, outcome)
        padded = cell.batch_size > 1 and supports_batching(spec)
        stream_batch = cast(BatchingModel, model).stream_batch if padded else None
        batched = stream_batch is not None
        params = self.plan.params(cell.task)
        for chunk in batches(list(pending[cell]), cell.batch_size if batched else 1):
            if self.cancel.is_set():
                return False
            prompts = [self._prompt(spec, cell, q) for q in chunk]
            segment, start = secrets.token_hex(4), time.perf_counter_ns()
            if stream_batch is not None:
                streams = stream_batch(prompts, params, self.cancel)
            else:
                streams = [run_turn(model, prompts[0], params, cancel=self.cancel).events]
            wall = time.perf_counter_ns() - start
            if self.cancel.is_set():
                return False
            for question, events in zip(chunk, streams, strict=True):
                self._keep(spec, cell, pending, question, events, outcome, {"segment": segment} if batched else None)
            if batched:
                self._segment(spec, cell, segment, len(chunk), wall)
        return True

    def _run_concurrent(self, model: LoadedModel, spec: ModelSpec, cell: Cell, pending: Pending,
                        outcome: Outcome) -> bool:
        """Keep ``batch_size`` requests in flight until the cell's questions are done; each row carries its
        start and end within the segment, and the segment's wall time is appended at the end (also when
        cancelled, covering the rows kept)."""
        params = self.plan.params(cell.task)
        segment, start = secrets.token_hex(4), time.perf_counter_ns()
        queue, kept, last_end = list(pending[cell]), 0, start

        def one(question: mmlu.Question) -> tuple[mmlu.Question, list[Event], int, int]:
            began = time.perf_counter_ns()
            events = run_turn(model, self._prompt(spec, cell, question), params, cancel=self.cancel).events
            return question, events, began, time.perf_counter_ns()

        with ThreadPoolExecutor(cell.batch_size, thread_name_prefix="taskclock-request") as pool:
            running: set[Future] = set()
            while queue or running:
                while queue and len(running) < cell.batch_size and not self.cancel.is_set():
                    running.add(pool.submit(one, queue.pop(0)))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    question, events, began, ended = future.result()
                    if self.cancel.is_set():
                        continue  # a request cut short by the stop is not a measurement
                    timing = {"segment": segment, "start_s": (began - start) / 1e9, "end_s": (ended - start) / 1e9}
                    self._keep(spec, cell, pending, question, events, outcome, timing)
                    kept, last_end = kept + 1, max(last_end, ended)
        self._segment(spec, cell, segment, kept, last_end - start)
        return not self.cancel.is_set()


def prepare(*, models: list[ModelSpec], task_list: list[TaskSpec], data: mmlu.MMLUData,
            subjects: list[str] | None, limit: int, seed: int, batch_size: int, warmup: int, max_tokens: int,
            sampling: SamplingParams, runs_dir: Path, batch_sizes: Sequence[int] = (), repeats: int = 1,
            no_prefix_cache: bool = False, system: str = "", input_tokens: int = 0,
            output_tokens: int = 0) -> tuple[Path, RunPlan]:
    """Pick the questions, create the run folder and write its run.toml and system.json. ``input_tokens`` and
    ``output_tokens``: the fixed-length workload in place of ``task_list`` (one request per question picked)."""
    if not models:
        raise DataError("no models given", "pass --models A,B")
    if bool(input_tokens) != bool(output_tokens) or min(input_tokens, output_tokens) < 0:
        raise DataError("a fixed-length workload needs both --input-tokens and --output-tokens, each at least 1",
                        "pass both, e.g. --input-tokens 512 --output-tokens 128")
    if input_tokens:
        if system.strip():
            raise DataError("a fixed-length workload's prompts are fitted whole: it takes no system prompt",
                            "drop the system prompt")
        task_list = [fixed_task(input_tokens, output_tokens)]
        no_prefix_cache = True  # each request's salt makes it new to every cache
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise DataError("a model is named twice in --models", "name each model once")
    sizes = list(dict.fromkeys(batch_sizes or [batch_size]))
    values.check_plan(limit=limit, batch_sizes=sizes, repeats=repeats, warmup=warmup, max_tokens=max_tokens or None,
                      input_tokens=input_tokens or None, output_tokens=output_tokens or None)
    selection = mmlu.select(data, subjects, limit, seed)
    plan = RunPlan(
        run_id=new_run_id(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), mmlu=data.source,
        subjects=mmlu.pick_subjects(data, subjects), limit=limit, seed=seed, batch_size=sizes[0],
        warmup=warmup, max_tokens=max_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
        skipped_rows=len(data.skipped), models=models, tasks=task_list, question_ids=[q.id for q in selection],
        batch_sizes=sizes, repeats=repeats, prefix_salt=secrets.token_hex(4) if no_prefix_cache else "",
        system=system.strip(), input_tokens=input_tokens, output_tokens=output_tokens,
    )
    values.check_rows(plan.total_rows())
    folder = storage.ensure_dir(runs_dir) / plan.run_id
    storage.ensure_dir(folder)
    write_plan(folder, plan)
    write_system(folder, models)
    return folder, plan
