"""The bench runner: replay task sets over an MMLU selection for several models, one row per answer.

A run lives in ``runs/<run-id>/``, a run folder of the run kit (runtime/runfolder.py, runtime/runner.py):
``run.toml`` (everything needed to repeat or resume it, including the question ids and the task templates),
``results.jsonl`` (one row per answer, in the one turn record's layout with its task and question beside it,
appended and fsynced as it completes) and ``system.json`` (the machine). A run may sweep several batch sizes and repeat
each cell: a row's key is (model, task, question id, batch size, repeat). A killed run loses only the rows
in flight; resuming reads the done keys and runs exactly the rest.

Batch size means what each backend can do: transformers models run padded batches of that many prompts;
HTTP models keep that many requests in flight until the set is done (``vllm bench serve
--max-concurrency``); llama.cpp in-process models run one request at a time, so they run only at batch 1.
A batched or concurrent stretch appends a ``segment`` record with its wall time, so the set's total time
is wall time, not a sum of overlapping task times.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from . import fitting, mmlu, storage, tasks, values
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
from .errors import DataError
from .events import Event
from .record import turn_fields
from .runfolder import (
    RUN_FILE,
    RunPlan,
    RunResults,
    check_models,
    create,
    new_run_id,
    row_key,
    row_salt,
    task_plan_toml,
)
from .runner import Progress, Runner
from .turn import run_turn, salted, warm_up, warm_up_note, warm_up_params, warm_up_prompt, with_system


def plan_to_toml(plan: RunPlan) -> str:
    return task_plan_toml("taskclock bench run: `taskclock bench --resume <this folder>` continues it", plan)


def write_plan(folder: Path, plan: RunPlan) -> None:
    storage.write_atomic(folder / RUN_FILE, plan_to_toml(plan))


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

def make_row(spec: ModelSpec, task: TaskSpec, question: mmlu.Question, events: Sequence[Event],
             batch_size: int, repeat: int = 0) -> dict[str, Any]:
    row = turn_fields(spec.name, spec.backend, events)
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


class BenchRunner(Runner[TaskSpec]):
    """Runs a plan into a folder; safe to call again on the same folder (it resumes). Its progress lines are the
    task sets; the rows left per cell are ``pending`` (the model running now)."""

    kind = "bench"
    row_kind = "result"

    def __init__(self, folder: Path, plan: RunPlan, questions: dict[str, mmlu.Question], *,
                 cancel: threading.Event | None = None, on_progress: Callable[[Progress], None] | None = None,
                 loader: Callable[[ModelSpec], LoadedModel] = load_model) -> None:
        missing = [qid for qid in plan.question_ids if qid not in questions]
        if missing:
            raise DataError(f"{len(missing)} question(s) of this run are not in the MMLU data (e.g. {missing[0]})",
                            "resume with the same MMLU data (--mmlu)")
        super().__init__(folder, plan.models, cancel=cancel, on_progress=on_progress, loader=loader)
        self.plan = plan
        self.questions = [questions[qid] for qid in plan.question_ids]
        self.done: set[tuple] = set()
        self.pending = Pending()  # the model running now's rows left
        self.fixed: FixedPrompts | None = None  # the model running now's, in a fixed-length run
        self.fitted: dict[str, dict[str, Any]] = {}  # question id → what its fixed-length prompt held

    def cells(self, spec: ModelSpec) -> Iterator[Cell]:
        """Sizes in sweep order, each size's repeats, each repeat's tasks."""
        return (Cell(task, size, repeat) for size in self.plan.sizes_for(spec)
                for repeat in range(self.plan.repeats) for task in self.plan.tasks)

    def resume(self, results: RunResults) -> None:
        self.done = {row_key(r) for r in results.rows}

    def plan_model(self, spec: ModelSpec) -> list[TaskSpec]:
        """The model's rows still to run, planned when its turn comes, a cell at a time: Ctrl-C stops a large plan
        at once, not after it is built."""
        self.pending = Pending()
        for cell in self.cells(spec):
            if self.cancel.is_set():
                return []
            key = (spec.name, cell.task.name)
            self.pending.add(cell, len(self.questions),
                             [q for q in self.questions if (*key, q.id, cell.batch_size, cell.repeat) not in self.done])
        for task in self.plan.tasks:
            self.report(spec, task, "done" if not self._left(task) else "waiting")
        return list(dict.fromkeys(cell.task for cell, left in self.pending.items() if left))

    def label(self, line: TaskSpec) -> str:
        return line.name

    def progress(self, spec: ModelSpec, line: TaskSpec) -> tuple[int, int]:
        total = self.pending.total[line.name]
        return total - self._left(line), total

    def _left(self, task: TaskSpec) -> int:
        return self.pending.left[task.name]

    def run_loaded(self, model: LoadedModel, spec: ModelSpec, lines: list[TaskSpec]) -> bool:
        """The model's pending cells; in a fixed-length run a prompt that cannot be fitted, or a tokenizer that
        stopped, raises and the failure policy records it (runtime/runner.py)."""
        try:
            if self.plan.input_tokens:
                reason = fitting.beyond_context(self.plan.input_tokens, self.plan.output_tokens,
                                                model.context_size(self.cancel))
                if reason:
                    self.fail(spec, lines, reason)
                    return True
                self.fixed = FixedPrompts(model, self.plan.input_tokens, self.cancel)
            self._warm_up(model, spec, lines[0])
            for cell, left in self.pending.items():
                if not left:
                    continue
                if not self._run_cell(model, spec, cell):
                    self.report(spec, cell.task, "stopped")
                    return False
                if not self._left(cell.task):
                    self.report(spec, cell.task, "done")
            return True
        finally:
            self.fixed = None

    def _warm_up(self, model: LoadedModel, spec: ModelSpec, task: TaskSpec) -> None:
        """Untimed turns (on a prompt of their own) so the first measured row does not pay the one-time costs.
        A model that runs padded batches then runs one untimed batch at each batch size it has rows left in:
        each new batch shape has set-up costs of its own (larger buffers, kernels chosen for the shape) that
        would otherwise land in that size's first timed batch."""
        if self.plan.warmup <= 0:
            return
        self.report(spec, task, "warmup", note=f"warming up ({warm_up_note(self.plan.warmup)})")
        params = self.plan.params(task)
        warm_up(model, params, self.plan.warmup, cancel=self.cancel)
        if supports_concurrency(spec) or not supports_batching(spec):
            return
        for size in sorted({cell.batch_size for cell, left in self.pending.items() if left and cell.batch_size > 1}):
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

    def _keep(self, spec: ModelSpec, cell: Cell, question: mmlu.Question, events: Sequence[Event],
              timing: dict[str, Any] | None = None) -> None:
        row = {**make_row(spec, cell.task, question, events, cell.batch_size, cell.repeat), **(timing or {}),
               **self.fitted.get(question.id, {})}
        with self._lock:  # concurrent requests finish on several threads
            self.pending.finish(cell, question)
        self.keep(spec, cell.task, row, batch_size=cell.batch_size)

    def _segment(self, spec: ModelSpec, cell: Cell, segment: str, rows: int, wall_ns: int) -> None:
        if rows:
            self.append({"kind": "segment", "model": spec.name, "task": cell.task.name, "batch_size": cell.batch_size,
                         "repeat": cell.repeat, "segment": segment, "rows": rows, "wall_s": wall_ns / 1e9})

    def _run_cell(self, model: LoadedModel, spec: ModelSpec, cell: Cell) -> bool:
        """Run the cell's pending questions; False when cancelled (rows in flight are dropped)."""
        self.report(spec, cell.task, "running", batch_size=cell.batch_size)
        if cell.batch_size > 1 and supports_concurrency(spec):
            return self._run_concurrent(model, spec, cell)
        padded = cell.batch_size > 1 and supports_batching(spec)
        stream_batch = cast(BatchingModel, model).stream_batch if padded else None
        batched = stream_batch is not None
        params = self.plan.params(cell.task)
        for chunk in batches(list(self.pending[cell]), cell.batch_size if batched else 1):
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
                self._keep(spec, cell, question, events, {"segment": segment} if batched else None)
            if batched:
                self._segment(spec, cell, segment, len(chunk), wall)
        return True

    def _run_concurrent(self, model: LoadedModel, spec: ModelSpec, cell: Cell) -> bool:
        """Keep ``batch_size`` requests in flight until the cell's questions are done; each row carries its
        start and end within the segment, and the segment's wall time is appended at the end (also when
        cancelled, covering the rows kept)."""
        params = self.plan.params(cell.task)
        segment, start = secrets.token_hex(4), time.perf_counter_ns()
        queue, kept, last_end = list(self.pending[cell]), 0, start

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
                    self._keep(spec, cell, question, events, timing)
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
    check_models(models)
    if bool(input_tokens) != bool(output_tokens) or min(input_tokens, output_tokens) < 0:
        raise DataError("a fixed-length workload needs both --input-tokens and --output-tokens, each at least 1",
                        "pass both, e.g. --input-tokens 512 --output-tokens 128")
    if input_tokens:
        if system.strip():
            raise DataError("a fixed-length workload's prompts are fitted whole: it takes no system prompt",
                            "drop the system prompt")
        task_list = [fixed_task(input_tokens, output_tokens)]
        no_prefix_cache = True  # each request's salt makes it new to every cache
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
    return create(runs_dir, plan.run_id, plan_to_toml(plan)), plan
