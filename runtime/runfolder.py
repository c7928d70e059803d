"""The folder half of the run kit (runtime/runner.py is the runner half): creating a run folder, its writers, the
one validating reader of ``run.toml`` and ``results.jsonl``, and its lock; for bench and sweep runs alike.

A run folder holds ``run.toml`` (the plan: everything needed to repeat or resume it, written once), ``results.jsonl``
(one record per finished row, appended and fsynced as it finishes, rows in the one turn record's layout:
runtime/record.py) and ``system.json`` (the machine it measures). A run folder is outside data by the time it is
read: a crash, an editor or a copy can damage it. So
``read_plan`` checks every key of ``run.toml`` and rejects a bad one with one line naming it, and
``read_results`` checks every line of ``results.jsonl``, skipping and counting the damaged ones (they are
reported, never fatal), so that ``--resume``, ``export`` and the Batch tab see only well-formed rows.
``locked`` holds an exclusive ``flock`` on the folder while a run appends to it: two runners on one folder
would run every pending row twice.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import storage, system, tasks, values
from .backend import ModelSpec, SamplingParams, supports_batching, supports_concurrency
from .config import TaskSpec, build, read_toml
from .errors import DataError, TaskclockError
from .record import COUNT, FIELD_TYPES, FIGURE, TEXT, TEXT_OR_NONE, read_turn
from .threads import ThreadChoice
from .untrusted import redact_url
from .values import InvalidValue

RUN_FILE = "run.toml"
RESULTS_FILE = "results.jsonl"
SYSTEM_FILE = "system.json"
LOCK_FILE = ".taskclock.lock"
RUN_KINDS = ("bench", "sweep", "load")  # the commands whose run folders these are (run.toml's kind)
STOP_REASONS = {"eos", "length", "stop", "cancelled", "error"}


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
    batch_sizes: list[int] = field(default_factory=list)  # the sweep; empty in runs before sweeps: [batch_size]
    repeats: int = 1
    prefix_salt: str = ""  # --no-prefix-cache: a per-run salt that makes every prompt's start unique
    system: str = ""  # the system prompt every request starts with ("" = none)
    # the fixed-length workload (bench --input-tokens N --output-tokens M): prompts of exactly N tokens by each
    # model's own count, replies of M tokens (ignore_eos); 0: the task sets
    input_tokens: int = 0
    output_tokens: int = 0

    def params(self, task: TaskSpec) -> SamplingParams:
        budget = min(task.max_tokens, self.max_tokens) if self.max_tokens else task.max_tokens
        return SamplingParams(max_tokens=budget, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              ignore_eos=self.output_tokens > 0)

    def caps(self) -> dict[str, int]:
        """Each task's output cap."""
        return {task.name: self.params(task).max_tokens for task in self.tasks}

    def sizes(self) -> list[int]:
        return list(self.batch_sizes) or [self.batch_size]

    def sizes_for(self, spec: ModelSpec) -> list[int]:
        """The batch sizes this model runs: the sweep, or only 1 where the backend neither batches nor serves
        concurrent requests."""
        return self.sizes() if supports_batching(spec) or supports_concurrency(spec) else [1]

    def total_rows(self) -> int:
        per_model = len(self.tasks) * len(self.question_ids) * self.repeats
        return sum(len(self.sizes_for(spec)) * per_model for spec in self.models)


@dataclass
class RunResults:
    """What results.jsonl holds: the rows (the first of any duplicate key wins), per model the error of a
    failure no later row superseded, and one ``"line N: reason"`` per damaged line that was skipped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)  # wall time of each batched/concurrent stretch
    skips: list[dict[str, Any]] = field(default_factory=list)  # a sweep's lengths a model could not run, and why



def damage_note(damaged: list[str]) -> str:
    """One line about the results.jsonl lines that were skipped, or "" when there were none."""
    if not damaged:
        return ""
    return f"skipped {len(damaged)} damaged line(s) in {RESULTS_FILE} (first: {damaged[0]}); the other rows are used"


def row_key(row: dict[str, Any]) -> tuple[str, str, str, int, int]:
    return row["model"], row["task"], row["qid"], row.get("batch_size") or 1, row.get("repeat") or 0


def load_key(row: dict[str, Any]) -> tuple[str, str, float, str, int]:
    """A load run's row (runtime/load.py): model, task, offered rate, the rate run's segment, request."""
    return row["model"], row["task"], row["rate"], row["segment"], row["request"]


def sweep_key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    """An input-length sweep's row (runtime/sweep.py): model, phase (cold | cached), requested length, repeat."""
    return row["model"], row["phase"], row["requested_tokens"], row.get("repeat") or 0


# ---- creating a run folder and its writers -------------------------------------------------------

def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def row_salt(run_salt: str, *parts: object) -> str:
    """A request's salt: unique per run and row, and the same again when the run is resumed."""
    return hashlib.sha256(":".join(map(str, (run_salt, *parts))).encode()).hexdigest()[:12]


def check_models(models: Sequence[ModelSpec]) -> None:
    """A run needs models, each named once (a row's key starts with the model's name)."""
    if not models:
        raise DataError("no models given", "pass --models A,B")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise DataError("a model is named twice in --models", "name each model once")


def create(runs_dir: Path, run_id: str, plan_toml: str) -> Path:
    """A new run folder under ``runs_dir`` with its run.toml and system.json."""
    folder = storage.ensure_dir(runs_dir) / run_id
    storage.ensure_dir(folder)
    storage.write_atomic(folder / RUN_FILE, plan_toml)
    write_system(folder)
    return folder


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
    """A run.toml table of the flat values a plan holds (tomllib only reads). TOML has no null: a None (a setting
    left to be worked out at load, like n_gpu_layers) is left out and reads back as its default."""
    lines = [f"[{header}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()
                               if v is not None and not isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def models_toml(models: Sequence[ModelSpec]) -> list[str]:
    """One [models.NAME] table per model, with every option (read_models reads them)."""
    parts = []
    for spec in models:
        values = {k: v for k, v in asdict(spec).items() if k not in ("name", "options")}
        values["source"] = redact_url(spec.source)  # a URL's password is never stored (docs/RELIABILITY.md)
        parts.append(toml_table(f"models.{json.dumps(spec.name)}", values))
    return parts


def write_system(folder: Path) -> None:
    """system.json: the machine a run measures; each in-process model adds its threads when it loads."""
    storage.write_atomic(folder / SYSTEM_FILE, json.dumps(system.system_block(), indent=2) + "\n")


def read_system(folder: Path) -> dict[str, Any] | None:
    try:
        system_block = storage.read_json(folder / SYSTEM_FILE, "system file")
    except DataError:
        return None
    return system_block if isinstance(system_block, dict) else None


def _update_system(folder: Path, key: str, change: Callable[[Any], Any]) -> None:
    """Rewrite system.json's ``key`` as ``change`` of its present value (None where it has none)."""
    block = read_system(folder) or {}
    block[key] = change(block.get(key))
    storage.write_atomic(folder / SYSTEM_FILE, json.dumps(block, indent=2) + "\n")


def record_threads(folder: Path, model: str, choice: ThreadChoice) -> None:
    """Add the threads a model loaded with (and why) to system.json: they are known only once it has loaded,
    since the decode count may be measured then (runtime/threads.py)."""
    _update_system(folder, "threads", lambda threads: {**(threads or {}), model: choice.record()})


def add_load(folder: Path, load: dict[str, Any]) -> None:
    """Append one run session's machine load to system.json's ``load`` list (a resumed run adds its own)."""
    _update_system(folder, "load", lambda loads: [*(loads or []), load])


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


# ---- run.toml ------------------------------------------------------------------------------------

_HEAD_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float),
                                           "list[str]": (list,), "list[int]": (list,), "list[float]": (list,)}
_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a finite number", "list[str]": "a list of strings",
               "list[int]": "a list of whole numbers of at least 1", "list[float]": "a list of numbers above 0"}


def check_head(path: Path, head: object, plan_type: type = RunPlan,
               tables: tuple[str, ...] = ("models", "tasks", "question_ids")) -> dict[str, Any]:
    """The [run] table's values for ``plan_type``'s fields (those in ``tables`` live in tables of their own)."""
    if not isinstance(head, dict):
        raise DataError(f"{path}: [run] must be a table", "start a new run")
    plan_fields = [f for f in fields(plan_type) if f.name not in tables]
    wanted = {f.name: str(f.type) for f in plan_fields}
    optional = {f.name for f in plan_fields if f.default is not MISSING or f.default_factory is not MISSING}
    for key in head:
        if key not in wanted:
            raise DataError(f"{path}: unknown key {key!r} in [run]", "start a new run")
    values: dict[str, Any] = {}
    for key, kind in wanted.items():
        if key not in head:
            if key in optional:  # written by newer versions only
                continue
            raise DataError(f"{path}: [run] has no {key}", "start a new run")
        value = head[key]
        ok = isinstance(value, _HEAD_TYPES[kind]) and not isinstance(value, bool)
        if kind == "list[str]":
            ok = ok and all(isinstance(v, str) for v in value)
        if kind == "list[int]":
            ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        if kind == "list[float]":
            ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                            for v in value)
        if kind == "float" and ok:
            ok = abs(value) < 1e300 if isinstance(value, int) else math.isfinite(value)  # a huge int fits no float
        if not ok:
            raise DataError(f"{path}: [run] {key} must be {_TYPE_NAMES[kind]}, not {_short(value)}",
                            "start a new run")
        values[key] = float(value) if kind == "float" else [float(v) for v in value] if kind == "list[float]" \
            else value
    return values


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:59] + "…"


def _tables(path: Path, data: dict[str, Any], section: str) -> dict[str, Any]:
    tables = data.get(section)
    if not isinstance(tables, dict) or not tables or not all(isinstance(t, dict) for t in tables.values()):
        raise DataError(f"{path}: [{section}] must be a table of tables, one per {section[:-1]}", "start a new run")
    return tables


def _kind(data: dict[str, Any]) -> object:
    """What run.toml says the folder holds: ``kind`` in [run] (sweeps write it), else a bench run."""
    head = data.get("run")
    return head.get("kind", "bench") if isinstance(head, dict) else "bench"


def folder_kind(folder: Path) -> object:
    """"bench", "sweep", "load", or whatever a damaged run.toml holds (its reader then says what is wrong)."""
    return _kind(read_toml(folder / RUN_FILE, "run"))


def read_run_toml(folder: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """run.toml's path and tables; a folder whose run.toml says it holds another kind of run is refused."""
    path = folder / RUN_FILE
    if not os.path.lexists(path):  # anything else at the name is named by the reader (storage.open_outside)
        raise DataError(f"{folder} is not a {kind} run folder (no {RUN_FILE})", "pass a folder under runs/")
    data = read_toml(path, "run")
    found = _kind(data)
    if found != kind:
        raise DataError(f"{folder} holds a {_short(found)} run, not a {kind} run",
                        f"pass it to `taskclock {found}`" if found in RUN_KINDS else "start a new run")
    return path, data


def read_models(path: Path, data: dict[str, Any]) -> list[ModelSpec]:
    """run.toml's [models.NAME] tables, each checked as a config entry is."""
    try:
        return [build(ModelSpec, table, path, f"models.{name}", name=name)
                for name, table in _tables(path, data, "models").items()]
    except TaskclockError as exc:
        raise _plan_error(path, exc) from None


def _plan_error(path: Path, exc: TaskclockError) -> DataError:
    """A bad table of run.toml as one line naming the file (config.build names it already; others do not)."""
    return DataError(exc.problem if str(path) in exc.problem else f"{path}: {exc.problem}", "start a new run")


def read_tasks(path: Path, data: dict[str, Any]) -> list[TaskSpec]:
    """run.toml's [tasks.NAME] tables, each checked as a config entry is."""
    try:
        task_list = [build(TaskSpec, table, path, f"tasks.{name}", name=name)
                     for name, table in _tables(path, data, "tasks").items()]
        for task in task_list:
            tasks.check_template(task)
    except TaskclockError as exc:
        raise _plan_error(path, exc) from None
    return task_list


def read_selection(path: Path, data: dict[str, Any]) -> list[str]:
    """run.toml's [selection] question ids."""
    selection = data.get("selection")
    ids = selection.get("ids") if isinstance(selection, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataError(f"{path}: [selection] ids must be a list of question ids", "start a new run")
    return ids


PLAN_TABLES = ("models", "tasks", "question_ids")  # a task-set plan's parts that have tables of their own


def task_plan_toml(title: str, plan: Any) -> str:
    """run.toml of a plan over task sets and MMLU questions (bench's, load's): its [run] head, then its models,
    tasks and question ids, under a first line saying how to continue the run."""
    head = {f.name: getattr(plan, f.name) for f in fields(plan) if f.name not in PLAN_TABLES}
    parts = [f"# {title}\n", toml_table("run", head), *models_toml(plan.models)]
    for task in plan.tasks:
        parts.append(toml_table(f"tasks.{json.dumps(task.name)}",
                                {k: v for k, v in asdict(task).items() if k != "name"}))
    parts.append(toml_table("selection", {"ids": plan.question_ids}))
    return "\n".join(parts)


def read_plan(folder: Path) -> RunPlan:
    """The run's plan; a missing, damaged or hand-broken run.toml is one DataError naming the key."""
    path, data = read_run_toml(folder, "bench")
    head = check_head(path, data.get("run"))
    plan = RunPlan(**head, models=read_models(path, data), tasks=read_tasks(path, data),
                   question_ids=read_selection(path, data))
    check_plan_values(path, plan.total_rows(), limit=plan.limit, batch_sizes=plan.sizes(), repeats=plan.repeats,
                      warmup=plan.warmup, max_tokens=plan.max_tokens or None, input_tokens=plan.input_tokens or None,
                      output_tokens=plan.output_tokens or None)
    check_sampling(path, plan)
    return plan


def check_sampling(path: Path, plan: Any) -> None:
    """run.toml's sampling held to its ranges (runtime/values.py), as a new run's is."""
    try:
        SamplingParams(temperature=plan.temperature, top_p=plan.top_p, seed=plan.seed)
    except InvalidValue as exc:
        raise DataError(f"{path}: [run] {exc.problem}", "start a new run") from None


def check_plan_values(path: Path, rows: int, **plan: Any) -> None:
    """run.toml's plan held to the ranges a new run's is (values.check_plan): an edited or damaged value is one
    line naming the file and key on resume, not a run that blames the model or counts -2/-2 rows."""
    try:
        values.check_plan(**plan)
        values.check_rows(rows)
    except TaskclockError as exc:
        raise DataError(f"{path}: [run] {exc.problem}", "start a new run") from None


# ---- results.jsonl -------------------------------------------------------------------------------

# The turn's fields every row must have (rows of every version hold them), with the types they may hold: the
# turn record declares them (runtime/record.py); a row always has its stop reason.
TURN_FIELDS: dict[str, tuple[type, ...]] = {
    **{key: FIELD_TYPES[key] for key in ("model", "error", "reply", "input_tokens", "output_tokens", "output_words",
                                         "output_chars", "ttft_s", "decode_tps", "task_time_s")},
    "stop_reason": TEXT,
}
# A bench row: the turn's fields and its task set's and question's (BenchRunner writes them).
RESULT_FIELDS: dict[str, tuple[type, ...]] = {**TURN_FIELDS, "task": TEXT, "qid": TEXT}
# Fields a row may lack (older runs), checked only when present: the rest of the turn's, and a bench row's.
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    **{key: types for key, types in FIELD_TYPES.items() if key not in TURN_FIELDS},
    "subject": TEXT, "batch_size": COUNT, "parsed": TEXT_OR_NONE, "answer": TEXT_OR_NONE,
    "correct": (bool, type(None)), "repeat": COUNT, "prompt_tokens": COUNT, "token_source": TEXT,
}
# A batched or concurrent stretch's wall time (BenchRunner._segment), for the set's total time.
SEGMENT_FIELDS: dict[str, tuple[type, ...]] = {"model": TEXT, "task": TEXT, "segment": TEXT, "wall_s": FIGURE,
                                               "batch_size": COUNT}
# An input-length sweep's row (runtime/sweep.py): a turn's figures keyed by phase and requested length.
SWEEP_FIELDS: dict[str, tuple[type, ...]] = {
    **TURN_FIELDS, "phase": TEXT, "requested_tokens": (int,), "prompt_tokens": (int,), "token_source": TEXT,
}
# A load run's row (runtime/load.py): one request at one offered rate, with when it was due and sent.
LOAD_FIELDS: dict[str, tuple[type, ...]] = {
    **TURN_FIELDS, "task": TEXT, "qid": TEXT, "rate": FIGURE, "segment": TEXT, "request": (int,),
    "scheduled_s": FIGURE, "queue_delay_s": FIGURE, "schedule_error_ms": (int, float),
}
LOAD_OPTIONAL: dict[str, tuple[type, ...]] = {**OPTIONAL_FIELDS, "first_byte_s": FIGURE}
# What a load rate's segment record adds: the open loop it ran (runtime/load.py rate_record).
LOAD_SEGMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "rate": FIGURE, "arrival": TEXT, "planned": COUNT, "finished": COUNT, "dropped": COUNT, "unsent": COUNT,
    "saturated": (bool,), "sent_span_s": FIGURE, "schedule_p50_ms": FIGURE, "schedule_p99_ms": FIGURE,
    "cpu_share": FIGURE, "max_in_flight": COUNT, "most_in_flight": COUNT,
}
# A sweep length a model cannot run (beyond its context), recorded once with the reason.
SKIP_FIELDS: dict[str, tuple[type, ...]] = {"model": TEXT, "requested_tokens": (int,), "reason": TEXT}
# The kinds of record that are rows, with their fields and key.
ROW_KINDS = {"result": (RESULT_FIELDS, OPTIONAL_FIELDS, row_key), "sweep": (SWEEP_FIELDS, OPTIONAL_FIELDS, sweep_key),
             "load": (LOAD_FIELDS, LOAD_OPTIONAL, load_key)}


def _bad_field(record: dict[str, Any], key: str, allowed: tuple[type, ...]) -> str:
    """Why ``record[key]`` is unusable, or ""."""
    value = record[key]
    if isinstance(value, bool) and bool not in allowed:
        return f"{key} is {_short(value)}"
    if not isinstance(value, allowed):
        return f"{key} is {_short(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and allowed in (COUNT, FIGURE):
        if not math.isfinite(value) or value < 0 or value > 1e15:
            return f"{key} is {_short(value)}"
    return ""


def check_record(record: object) -> str:
    """Why a results.jsonl record cannot be used, or "" when it can."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    kind = record.get("kind")
    if kind == "failure":
        required: dict[str, tuple[type, ...]] = {"model": TEXT, "error": TEXT}
        optional: dict[str, tuple[type, ...]] = {}
    elif kind in ROW_KINDS:
        required, optional, _ = ROW_KINDS[kind]
    elif kind == "segment":
        required, optional = SEGMENT_FIELDS, LOAD_SEGMENT_FIELDS
    elif kind == "skip":
        required, optional = SKIP_FIELDS, {}
    else:
        return f"unknown kind {_short(kind)}"
    for key, allowed in required.items():
        if key not in record:
            return f"no {key}"
        if reason := _bad_field(record, key, allowed):
            return reason
    for key, allowed in optional.items():
        if key in record and (reason := _bad_field(record, key, allowed)):
            return reason
    if kind in ROW_KINDS and record["stop_reason"] not in STOP_REASONS:
        return f"stop_reason is {_short(record['stop_reason'])}"
    return ""


def read_results(folder: Path, row_kind: str = "result") -> RunResults:
    """Every usable record of results.jsonl; damaged lines are skipped and listed in ``damaged``, and so are
    rows of another kind of run (``row_kind``: "result" in a bench run, "sweep" in a sweep)."""
    path = folder / RESULTS_FILE
    results = RunResults()
    if not os.path.lexists(path):
        return results
    rows: dict[tuple, dict[str, Any]] = {}
    for number, record, reason in storage.read_lines(path, "results file"):
        reason = reason or check_record(record)
        if not reason and isinstance(record, dict) and record["kind"] in ROW_KINDS and record["kind"] != row_kind:
            reason = f"a {record['kind']} row, not a {row_kind} row"
        if reason:
            results.damaged.append(f"line {number}: {reason}")
            continue
        assert isinstance(record, dict)
        if record["kind"] == "failure":
            results.failures[record["model"]] = record["error"]
        elif record["kind"] == "segment":
            results.segments.append(record)
        elif record["kind"] == "skip":
            results.skips.append(record)
        else:
            rows.setdefault(ROW_KINDS[row_kind][2](record), read_turn(record))
            results.failures.pop(record["model"], None)
    results.rows = list(rows.values())
    return results


# ---- one runner per folder -----------------------------------------------------------------------

@contextlib.contextmanager
def locked(folder: Path, what: str = "bench") -> Iterator[None]:
    """Hold the folder's lock while a run appends to it; a second runner gets one line naming the holder. The
    lock and results.jsonl are opened as the folder's own files (storage.own_file), so a shared folder whose
    lock or results file is a link is refused, naming the file, before any model loads."""
    fd = storage.own_file(folder / LOCK_FILE, os.O_RDWR)
    try:
        if os.path.lexists(folder / RESULTS_FILE):  # else the first append creates it, as its own file
            os.close(storage.own_file(folder / RESULTS_FILE))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "unknown"
            raise DataError(f"{folder} is in use by another taskclock {what} (pid {holder})",
                            "wait for it to finish, or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
