"""Messages between the app's widgets, and the typed results that live-run jobs post to their panes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

from taskclock.runtime.backend import LoadedModel, ModelSpec
from taskclock.runtime.compare import Comparison
from taskclock.runtime.runner import Outcome
from taskclock.runtime.sessions import SessionSummary
from taskclock.runtime.trash import Trashed
from taskclock.runtime.turn import TurnResult

if TYPE_CHECKING:  # only named in annotations: the live states import the runtime's runners
    from .live import LiveRun



@dataclass
class SendPrompt(Message):
    """The user pressed Enter in the prompt box."""

    text: str


@dataclass
class OpenSession(Message):
    """The user picked a past session in the Sessions view."""

    path: Path


@dataclass
class Remember(Message):
    """Values for the app to keep for the next launch (fields of runtime.remembered.Remembered)."""

    values: dict[str, Any]


class SettingsChanged(Message):
    """The chat settings changed (Ctrl+G): the tabs that show the settings they will run with say the new ones."""


@dataclass
class ModelsUsed(Message):
    """Models a tab loaded or started a run with: the model picker lists them first from now on."""

    names: list[str]


@dataclass
class SessionsListed(Message):
    """The Sessions tab's scan of its folder found these sessions, newest first."""

    summaries: list[SessionSummary]


@dataclass
class SessionsListFailed(Message):
    error: BaseException


@dataclass
class SessionRead(Message):
    """A session log read in a worker (the session viewer, the turn picker): its turn records."""

    turns: list[dict[str, Any]]


@dataclass
class SessionReadFailed(Message):
    error: BaseException


@dataclass
class ModelLoaded(Message):
    model: LoadedModel


@dataclass
class ModelLoadFailed(Message):
    spec: ModelSpec
    error: BaseException


@dataclass
class TurnFinished(Message):
    """A chat turn ended (done, stopped or failed inside the backend); ``log_error`` if it was not saved."""

    result: TurnResult
    log_error: str | None = None


@dataclass
class RunFailed(Message):
    """A live-run job raised: the run ended without a result."""

    error: BaseException


@dataclass
class ColumnState(Message):
    """A Compare column's state before its turn starts (loading, loaded, warming up)."""

    slot: int
    state: str


@dataclass
class CompareFinished(Message):
    """Every compared model has answered, or the run stopped or failed; ``loaded`` is the models kept."""

    loaded: dict[int, LoadedModel]
    outcome: Comparison | BaseException
    log_error: str | None = None


@dataclass
class RunStarted(Message):
    """A run-folder run (the Batch tab's, in any mode) has its folder; ``live`` is what the runner reports
    into."""

    live: LiveRun


@dataclass
class RunFinished(Message):
    """A run-folder run ended (finished or stopped); its summary is written."""

    folder: Path
    outcome: Outcome


@dataclass
class TrashListed(Message):
    """The trash screen's look at the trash, read in a worker: each deleted log with its summary (None when it
    cannot be read as a session, though it can still be restored)."""

    items: list[tuple[Trashed, SessionSummary | None]]


@dataclass
class TrashEmptied(Message):
    """A launch emptied the sessions trash of these logs (deleted over a week ago)."""

    names: list[str]


@dataclass
class BranchChat(Message):
    """Continue a recorded conversation in the Chat tab as a new session: ``history`` before the turn branched
    from, whose ``prompt`` goes back in the box; ``origin`` names that turn ({"session", "turn"})."""

    history: list[dict[str, str]]
    prompt: str
    origin: dict[str, Any]
