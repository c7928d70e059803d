"""A view per mode of the Batch tab. The pane (tui/panes/batch.py) holds what every mode shares — the mode
picker, the models and runs-folder fields, Start/Stop/Resume, the status line, the runs list — and places the
widgets of each view in its layout: ``fields`` in the options row, ``notes`` under the buttons, ``results``
under the status line, ``charts`` in the bottom row. A view's widgets show only while its mode is picked.

A view knows its kind of run folder: how to start and resume one (checking its own fields), how to show one
as it fills in or once opened, and what the runs list says of it. Adding a mode is one module here with a
BatchView subclass and its line in panes/batch.py's VIEWS.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label

from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.runner import Outcome

from ...context import AppContext
from ...live import LiveRun

BAR_WIDTH = 16
# What a view hands the pane to start a run: called in the worker with the run's cancel event, it prepares
# the folder and returns the live state the runner reports into, and the runner's run.
StartRun = Callable[[threading.Event], tuple[LiveRun, Callable[[], Outcome]]]
Live = TypeVar("Live", bound=LiveRun)  # the live state of a view's kind of run


def text_bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else 0
    return f"{'█' * filled}{'░' * (BAR_WIDTH - filled)} {done}/{total}"


def option_field(label: str, box: Input) -> Vertical:
    """An option's label and box, as every field in the options row is laid out."""
    return Vertical(Label(label), box, classes="batch-field")


@dataclass(frozen=True)
class Listing:
    """A run folder's line in the runs list: its models, what it ran (tasks, input lengths…) and its rows."""

    models: list[ModelSpec]
    what: str
    done: int
    total: int


@dataclass(frozen=True)
class Opened:
    """What the status line says of a run just opened, and whether Resume has anything left to do."""

    what: str
    incomplete: bool


class BatchView(Generic[Live]):
    """One mode of the Batch tab. Its widgets are built once, when the pane composes; the pane calls the rest
    on the UI thread, except what ``start``/``resume`` return, which runs in the run's worker."""

    KIND: ClassVar[str]  # the kind of run folder it writes and opens (runfolder.folder_kind)
    TITLE: ClassVar[str]  # its name in the mode picker
    table: DataTable  # the table of the run shown (rows per cell): the pane brings it into view on open

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.narrow = False  # the screen's width class (tui/app.py NARROW_WIDTH): the short column sets
        self.boxes: dict[str, Input] = {}  # its option fields by id

    def field(self, label: str, field_id: str, value: str, placeholder: str = "") -> Vertical:
        """One of its option fields (for ``fields``), read back with ``value``."""
        box = self.boxes[field_id] = Input(value, placeholder=placeholder, id=field_id)
        return option_field(label, box)

    def value(self, field_id: str) -> str:
        return self.boxes[field_id].value.strip()

    # ---- its widgets, in the pane's four places -----------------------------------------------------

    def fields(self) -> Iterable[Widget]:
        return ()

    def notes(self) -> Iterable[Widget]:
        return ()

    def results(self) -> Iterable[Widget]:
        return ()

    def charts(self) -> Iterable[Widget]:
        return ()

    def settings_changed(self) -> None:
        """The chat settings changed (Ctrl+G): a view that runs with them says the new ones."""

    def set_narrow(self, narrow: bool) -> None:
        """Swap its tables' column sets; the pane repaints after."""
        self.narrow = narrow

    # ---- runs ---------------------------------------------------------------------------------------

    def start(self, specs: list[ModelSpec], runs_dir: Path) -> StartRun:
        """A new run of these models: its own fields checked now (a bad one raises DataError)."""
        raise NotImplementedError

    def resume(self, folder: Path) -> StartRun:
        raise NotImplementedError

    def export(self, folder: Path) -> object:
        """Write the run's summary (in the worker, once the runner returns)."""
        raise NotImplementedError

    def remembered(self) -> dict[str, str]:
        """Its fields to keep for the next launch once a run of it has started (runtime.remembered)."""
        return {}

    def started(self, live: Live) -> str:
        """The status line while the run is on: what it runs."""
        raise NotImplementedError

    def open(self, folder: Path) -> Live:
        """A past (or just finished) run: its state for ``repaint``, and what only a whole run shows (charts)."""
        raise NotImplementedError

    def repaint(self, live: Live) -> None:
        """Show the run so far (on the UI timer while a run is on; once when a run is opened or ends)."""
        raise NotImplementedError

    def opened(self, live: Live) -> Opened:
        """A run just opened: its rows done of the rows planned (a view whose plan has no fixed size says its
        own)."""
        done, total = live.progress()
        return Opened(f"{done}/{total} rows", done < total)

    def follow_row(self, table: DataTable, row: int, live: Live) -> bool:
        """The highlighted row of one of its tables moved while no run is on: True if it followed it."""
        return False

    def listed(self, folder: Path) -> Listing:
        raise NotImplementedError
