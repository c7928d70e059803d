"""The runner half of the run kit: what every runner that fills a run folder shares (runtime/runfolder.py is the
folder half).

A runner takes its run folder's lock, reads the rows already there (so a resumed run runs only the rest), and
then, model by model, plans what is left, loads the model, runs it and closes it. Every row is appended and
fsynced as it finishes (``keep``). One failure policy holds for every runner: a model that fails to load, or
raises while it runs, gets a ``failure`` record with its error and its progress lines marked failed, and the run
goes on with the next model (the rows it finished stay; the console then exits 1). A full disk is not a model's
fault: it ends the run. Ctrl-C (``cancel``) stops between rows, or at once while a model loads, and is reported
as ``interrupted``.

A runner fills in its plan and its row: ``resume`` (the rows already done), ``plan_model`` (a model's progress
lines with work left: bench's task sets, sweep's input lengths), ``label`` and ``progress`` (how a line is named
and counted), and ``run_loaded`` (run the loaded model's pending rows, handing each to ``keep``).
"""
from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from . import runfolder, storage
from .backend import LoadedModel, ModelSpec, first_line, load_model
from .errors import Cancelled, StorageError, TaskclockError
from .runfolder import RESULTS_FILE, RunResults
from .untrusted import redact

Line = TypeVar("Line", bound=Hashable)


@dataclass
class Progress:
    """What the runner reports after every row and state change (CLI bars, Batch tab table), per model and
    progress line (``task``: a bench's task set, a sweep's input length). ``done`` and ``total`` count the line's
    rows over every batch size and repeat; ``batch_size`` is the size running now (0 before any runs)."""

    model: str
    task: str
    done: int
    total: int
    state: str  # waiting | loading | warmup | running | done | failed | stopped | skipped
    row: dict[str, Any] | None = None
    error: str = ""
    batch_size: int = 0
    note: str = ""  # what the state means now, for the console and the tab ("warming up (…)")
    live: dict[str, Any] | None = None  # a load rate's figures so far (runtime/load.py LIVE_KEYS), while it runs

    @property
    def shown(self) -> str:
        """The state as the console and the Batch tab say it."""
        return self.note or self.state


@dataclass
class Outcome:
    rows_written: int = 0
    interrupted: bool = False
    failures: dict[str, str] = field(default_factory=dict)


def failure_reason(exc: Exception) -> str:
    """Why a model failed, as one line: taskclock's own errors as they read, anything a backend or library
    raised as its type and first line."""
    return str(exc) if isinstance(exc, TaskclockError) else f"{type(exc).__name__}: {first_line(exc)}"


LOAD_POLL_S = 0.1  # how often a load in progress looks at Ctrl-C


def load_for_run(loader: Callable[[ModelSpec], LoadedModel], spec: ModelSpec, folder: Path,
                 cancel: threading.Event) -> tuple[LoadedModel | None, str]:
    """The model (its threads recorded in the run's system.json), or None and why it failed to load: in a run, a
    broken model fails its own rows and must not end the other models' runs. None and no reason when Ctrl-C came
    first: no backend can stop a load midway (a GGUF or torch load is one native call; a server may hold back its
    model list for its whole timeout), so the load goes on on a thread of its own, which closes the model if it
    ends up loaded, and the run stops at once."""
    box: dict[str, Any] = {}
    settled = threading.Lock()  # the load ending and the run giving up on it: whichever comes first decides
    ended, abandoned = threading.Event(), threading.Event()

    def load() -> None:
        try:
            box["model"] = loader(spec)
        except Exception as exc:  # anything a backend raises
            box["error"] = failure_reason(exc)
        finally:
            with settled:
                ended.set()
                orphan = abandoned.is_set()
            if orphan and "model" in box:
                box.pop("model").close()

    threading.Thread(target=load, name=f"taskclock-load-{spec.name}", daemon=True).start()
    while not ended.wait(LOAD_POLL_S):
        with settled:
            if cancel.is_set() and not ended.is_set():
                abandoned.set()
                return None, ""
    if "model" not in box:
        return None, box.get("error", "the load ended without a model")
    model = box["model"]
    threads = getattr(model, "threads", None)  # a loader's own wrapper (tests) may not say
    if threads is not None:
        runfolder.record_threads(folder, spec.name, threads)
    return model, ""


class Runner(abc.ABC, Generic[Line]):
    """Runs a plan into its folder, model by model; safe to call again on the same folder (it resumes)."""

    kind: ClassVar[str]  # the command that runs and resumes it ("bench", "sweep")
    row_kind: ClassVar[str]  # the kind of the rows it writes (runfolder.ROW_KINDS)

    def __init__(self, folder: Path, models: Sequence[ModelSpec], *, cancel: threading.Event | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 loader: Callable[[ModelSpec], LoadedModel] = load_model) -> None:
        self.folder = folder
        self.models = list(models)
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress or (lambda progress: None)
        self.loader = loader
        self.results = folder / RESULTS_FILE
        self.outcome = Outcome()
        self._lock = threading.Lock()  # concurrent requests finish on several threads

    # ---- filled in by each runner ----

    @abc.abstractmethod
    def resume(self, results: RunResults) -> None:
        """Take the records the folder holds already: their rows are not run again."""

    @abc.abstractmethod
    def plan_model(self, spec: ModelSpec) -> list[Line]:
        """The model's progress lines with rows left, in the order they run; reports every line's state first."""

    @abc.abstractmethod
    def label(self, line: Line) -> str:
        """The line as progress reports name it."""

    @abc.abstractmethod
    def progress(self, spec: ModelSpec, line: Line) -> tuple[int, int]:
        """(rows done, rows planned) of the model's line."""

    @abc.abstractmethod
    def run_loaded(self, model: LoadedModel, spec: ModelSpec, lines: list[Line]) -> bool:
        """Run the loaded model's pending rows; False when cancelled."""

    # ---- the same for every runner ----

    def run(self) -> Outcome:
        """Run every pending row, holding the folder's lock (a second runner on it is refused) and keeping the
        machine's other work meanwhile in system.json."""
        with runfolder.locked(self.folder, self.kind), runfolder.watching_load(self.folder, self.models):
            self.outcome = Outcome()
            self.resume(runfolder.read_results(self.folder, self.row_kind))
            for spec in self.models:
                if self.cancel.is_set():
                    break
                lines = self.plan_model(spec)
                if lines:
                    self._run_model(spec, lines)
            self.outcome.interrupted = self.outcome.interrupted or self.cancel.is_set()
            return self.outcome

    def _run_model(self, spec: ModelSpec, lines: list[Line]) -> None:
        """Load, run and close one model under the failure policy (above)."""
        self.report(spec, lines[0], "loading")
        model, error = load_for_run(self.loader, spec, self.folder, self.cancel)
        if model is None and not error:  # Ctrl-C while it loaded
            self.report(spec, lines[0], "stopped")
            self.outcome.interrupted = True
            return
        if model is None:
            self.fail(spec, lines, error)
            return
        try:
            if not self.run_loaded(model, spec, lines):
                self.outcome.interrupted = True
        except Cancelled:  # Ctrl-C while the model was asked for a count or its context: nothing to record
            self.report(spec, lines[0], "stopped")
            self.outcome.interrupted = True
        except StorageError:
            raise
        except Exception as exc:  # a model that crashes mid-run: recorded, and the next model runs
            self.fail(spec, lines, failure_reason(exc))
        finally:
            model.close()

    def report(self, spec: ModelSpec, line: Line, state: str, row: dict[str, Any] | None = None, error: str = "",
               batch_size: int = 0, note: str = "", live: dict[str, Any] | None = None) -> None:
        done, total = self.progress(spec, line)
        self.on_progress(Progress(spec.name, self.label(line), done, total, state, row, error, batch_size, note,
                                  live))

    def append(self, record: dict[str, Any]) -> None:
        """One record appended to results.jsonl and fsynced (runtime/storage.py)."""
        storage.append(self.results, record)

    def keep(self, spec: ModelSpec, line: Line, row: dict[str, Any], batch_size: int = 0) -> None:
        """A finished row, which the runner has already taken off what is left: appended, counted, reported."""
        with self._lock:
            self.append(row)
            self.outcome.rows_written += 1
            self.report(spec, line, "running", row, batch_size=batch_size)

    def keep_all(self, spec: ModelSpec, line: Line, rows: list[dict[str, Any]], closing: dict[str, Any]) -> None:
        """Rows that stand only together (a load rate's requests) and the record that closes them, appended as one
        write (a rate cut short leaves none of its rows), counted and reported done."""
        with self._lock:
            storage.append_all(self.results, [*rows, closing])
            self.outcome.rows_written += len(rows)
            self.report(spec, line, "done")

    def fail(self, spec: ModelSpec, lines: list[Line], error: str) -> None:
        """The failure policy's record: one ``failure`` line, the model's failure in the outcome, and its lines
        with rows left reported failed."""
        error = redact(error)
        self.append({"kind": "failure", "model": spec.name, "error": error})
        self.outcome.failures[spec.name] = error
        for line in lines:
            done, total = self.progress(spec, line)
            if done < total:
                self.report(spec, line, "failed", error=error)
