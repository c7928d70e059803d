"""The bench runner: replay task sets over an MMLU selection for several models, one row per answer.

A run lives in ``runs/<run-id>/``: ``run.toml`` (everything needed to repeat or resume it, including the
question ids and the task templates) and ``results.jsonl`` (one record per completed row, appended and
fsynced as it completes). A killed run loses only the row in flight; resuming reads the done keys
(model, task, question id) and runs exactly the rest.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import metrics, mmlu, storage, tasks
from .backend import LoadedModel, ModelSpec, SamplingParams, load_model
from .config import TaskSpec, build, read_toml
from .errors import DataError, TaskclockError
from .events import Event
from .turn import run_turn, warm_up

RUN_FILE = "run.toml"
RESULTS_FILE = "results.jsonl"
BATCHED_BACKENDS = ("hf",)  # backends with real padded batches; others run one request at a time


@dataclass
class RunPlan:
    """A run's whole configuration, as stored in run.toml."""

    run_id: str
    created: str
    mmlu: str
    subjects: list[str]
    limit: int
    seed: int
    batch_size: int
    warmup: int
    max_tokens: int  # 0: each task's own budget
    temperature: float
    top_p: float
    skipped_rows: int
    models: list[ModelSpec]
    tasks: list[TaskSpec]
    question_ids: list[str]

    def params(self, task: TaskSpec) -> SamplingParams:
        budget = min(task.max_tokens, self.max_tokens) if self.max_tokens else task.max_tokens
        return SamplingParams(max_tokens=budget, temperature=self.temperature, top_p=self.top_p, seed=self.seed)

    def total_rows(self) -> int:
        return len(self.models) * len(self.tasks) * len(self.question_ids)


def row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["model"], row["task"], row["qid"]


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


def _toml_table(header: str, values: dict[str, Any]) -> str:
    lines = [f"[{header}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def plan_to_toml(plan: RunPlan) -> str:
    head = {f.name: getattr(plan, f.name) for f in fields(plan) if f.name not in ("models", "tasks", "question_ids")}
    parts = ["# taskclock bench run: `taskclock bench --resume <this folder>` continues it\n", _toml_table("run", head)]
    for spec in plan.models:
        parts.append(_toml_table(f"models.{json.dumps(spec.name)}",
                                 {k: v for k, v in asdict(spec).items() if k not in ("name", "options")}))
    for task in plan.tasks:
        parts.append(_toml_table(f"tasks.{json.dumps(task.name)}",
                                 {k: v for k, v in asdict(task).items() if k != "name"}))
    parts.append(_toml_table("selection", {"ids": plan.question_ids}))
    return "\n".join(parts)


def read_plan(folder: Path) -> RunPlan:
    path = folder / RUN_FILE
    if not path.is_file():
        raise DataError(f"{folder} is not a bench run folder (no {RUN_FILE})", "pass a folder under runs/")
    data = read_toml(path, "run")
    try:
        head = dict(data["run"])
        models = [build(ModelSpec, table, path, f"models.{name}", name=name) for name, table in data["models"].items()]
        task_list = [build(TaskSpec, table, path, f"tasks.{name}", name=name) for name, table in data["tasks"].items()]
        return RunPlan(**head, models=models, tasks=task_list, question_ids=list(data["selection"]["ids"]))
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path} is incomplete or damaged ({exc})", "start a new run") from None


def write_plan(folder: Path, plan: RunPlan) -> None:
    storage.write_atomic(folder / RUN_FILE, plan_to_toml(plan))


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def read_rows(folder: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Result rows (the first of any duplicate key wins) and, per model, the error of a failure that no
    later row superseded (a model that failed, then loaded on resume, is not failed)."""
    path = folder / RESULTS_FILE
    rows: dict[tuple, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    if path.is_file():
        for record in storage.read(path):
            if record.get("kind") == "failure":
                failures[record["model"]] = record["error"]
            elif record.get("kind") == "result":
                rows.setdefault(row_key(record), record)
                failures.pop(record["model"], None)
    return list(rows.values()), failures


# ---- the runner ----------------------------------------------------------------------------------

@dataclass
class Progress:
    """What the runner reports after every row and state change (CLI bars, Batch tab table)."""

    model: str
    task: str
    done: int
    total: int
    state: str  # loading | warmup | running | done | failed | stopped
    row: dict[str, Any] | None = None
    error: str = ""


@dataclass
class Outcome:
    rows_written: int = 0
    interrupted: bool = False
    failures: dict[str, str] = field(default_factory=dict)


def make_row(spec: ModelSpec, task: TaskSpec, question: mmlu.Question, events: Sequence[Event],
             batch_size: int) -> dict[str, Any]:
    figures = metrics.compute(events)
    reply = metrics.output_text(events)
    done = events[-1] if events else None
    parsed = tasks.extract_letter(reply, question.choices) if task.scored else None
    return {
        "kind": "result",
        "model": spec.name,
        "backend": spec.backend,
        "task": task.name,
        "qid": question.id,
        "subject": question.subject,
        "batch_size": batch_size,
        "input_tokens": figures.input_tokens,
        "output_tokens": figures.output_tokens,
        "output_words": figures.output_words,
        "output_chars": figures.output_chars,
        "ttft_s": figures.ttft_s,
        "decode_tps": figures.decode_tps,
        "task_time_s": figures.task_time_s,
        "stop_reason": figures.stop_reason,
        "gpu_peak_mem_mb": figures.gpu_peak_mem_mb,
        "energy_j": figures.energy_j,
        "error": getattr(done, "error", None),
        "reply": reply,
        "parsed": parsed,
        "answer": question.answer if task.scored else None,
        "correct": (parsed == question.answer) if task.scored else None,
    }


def batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class BenchRunner:
    """Runs a plan into a folder; safe to call again on the same folder (it resumes)."""

    def __init__(self, folder: Path, plan: RunPlan, questions: dict[str, mmlu.Question], *,
                 cancel: threading.Event | None = None, on_progress: Callable[[Progress], None] | None = None,
                 loader: Callable[[ModelSpec], LoadedModel] = load_model) -> None:
        missing = [qid for qid in plan.question_ids if qid not in questions]
        if missing:
            raise DataError(f"{len(missing)} question(s) of this run are not in the MMLU data (e.g. {missing[0]})",
                            "pass the same MMLU folder as the run used (--mmlu)")
        self.folder = folder
        self.plan = plan
        self.questions = [questions[qid] for qid in plan.question_ids]
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress or (lambda progress: None)
        self.loader = loader
        self.results = folder / RESULTS_FILE

    def batch_size(self, spec: ModelSpec) -> int:
        return self.plan.batch_size if spec.backend in BATCHED_BACKENDS else 1

    def run(self) -> Outcome:
        rows, _ = read_rows(self.folder)
        done = {row_key(r) for r in rows}
        outcome = Outcome()
        for spec in self.plan.models:
            if self.cancel.is_set():
                outcome.interrupted = True
                break
            pending = {task.name: [q for q in self.questions if (spec.name, task.name, q.id) not in done]
                       for task in self.plan.tasks}
            for task in self.plan.tasks:
                self._report(spec, task, pending, "done" if not pending[task.name] else "waiting")
            if not any(pending.values()):
                continue
            self._run_model(spec, pending, outcome)
        outcome.interrupted = outcome.interrupted or self.cancel.is_set()
        return outcome

    def _report(self, spec: ModelSpec, task: TaskSpec, pending: dict[str, list], state: str,
                row: dict | None = None, error: str = "") -> None:
        total = len(self.questions)
        self.on_progress(Progress(spec.name, task.name, total - len(pending[task.name]), total, state, row, error))

    def _fail(self, spec: ModelSpec, pending: dict[str, list], error: str, outcome: Outcome) -> None:
        storage.append(self.results, {"kind": "failure", "model": spec.name, "error": error})
        outcome.failures[spec.name] = error
        for task in self.plan.tasks:
            if pending[task.name]:
                self._report(spec, task, pending, "failed", error=error)

    def _run_model(self, spec: ModelSpec, pending: dict[str, list], outcome: Outcome) -> None:
        first = next(t for t in self.plan.tasks if pending[t.name])
        self._report(spec, first, pending, "loading")
        try:
            model = self.loader(spec)
        except TaskclockError as exc:
            self._fail(spec, pending, str(exc), outcome)
            return
        except Exception as exc:  # a broken model must not end the other models' runs
            self._fail(spec, pending, f"{type(exc).__name__}: {exc}", outcome)
            return
        try:
            self._warm_up(model, spec, first, pending)
            for task in self.plan.tasks:
                if not pending[task.name]:
                    continue
                if not self._run_task(model, spec, task, pending, outcome):
                    outcome.interrupted = True
                    self._report(spec, task, pending, "stopped")
                    return
                self._report(spec, task, pending, "done")
        finally:
            model.close()

    def _warm_up(self, model: LoadedModel, spec: ModelSpec, task: TaskSpec, pending: dict[str, list]) -> None:
        """Untimed turns so the first measured row does not pay for cold caches."""
        if self.plan.warmup <= 0:
            return
        self._report(spec, task, pending, "warmup")
        for question in self.questions[: self.plan.warmup]:
            warm_up(model, tasks.messages(task, question, spec.chat), self.plan.params(task), cancel=self.cancel)

    def _run_task(self, model: LoadedModel, spec: ModelSpec, task: TaskSpec, pending: dict[str, list],
                  outcome: Outcome) -> bool:
        """Run the task's pending questions; False when cancelled (the row in flight is dropped)."""
        params = self.plan.params(task)
        size = self.batch_size(spec)
        self._report(spec, task, pending, "running")
        for chunk in batches(list(pending[task.name]), size):
            if self.cancel.is_set():
                return False
            prompts = [tasks.messages(task, q, spec.chat) for q in chunk]
            if size > 1 and hasattr(model, "stream_batch"):
                streams = model.stream_batch(prompts, params, self.cancel)
            else:
                streams = [run_turn(model, prompts[0], params, cancel=self.cancel).events]
            if self.cancel.is_set():
                return False
            for question, events in zip(chunk, streams, strict=True):
                row = make_row(spec, task, question, events, len(chunk) if size > 1 else 1)
                storage.append(self.results, row)
                outcome.rows_written += 1
                pending[task.name].remove(question)
                self._report(spec, task, pending, "running", row)
        return True


def prepare(*, models: list[ModelSpec], task_list: list[TaskSpec], data: mmlu.MMLUData,
            subjects: list[str] | None, limit: int, seed: int, batch_size: int, warmup: int, max_tokens: int,
            sampling: SamplingParams, runs_dir: Path) -> tuple[Path, RunPlan]:
    """Pick the questions, create the run folder and write its run.toml."""
    if not models:
        raise DataError("no models given", "pass --models A,B")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise DataError("a model is named twice in --models", "name each model once")
    selection = mmlu.select(data, subjects, limit, seed)
    plan = RunPlan(
        run_id=new_run_id(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), mmlu=data.source,
        subjects=mmlu.pick_subjects(data, subjects), limit=limit, seed=seed, batch_size=batch_size,
        warmup=warmup, max_tokens=max_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
        skipped_rows=len(data.skipped), models=models, tasks=task_list, question_ids=[q.id for q in selection],
    )
    folder = storage.ensure_dir(runs_dir) / plan.run_id
    storage.ensure_dir(folder)
    write_plan(folder, plan)
    return folder, plan
