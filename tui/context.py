"""What the app's tabs need to do their work, passed in so tests can swap the model loader."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taskclock.runtime.backend import LoadedModel, ModelSpec, SamplingParams, load_model
from taskclock.runtime.config import Config
from taskclock.runtime.remembered import Remembered


@dataclass(frozen=True)
class ChatSettings:
    """The system prompt and the sampling the Chat tab sets (Ctrl+G)."""

    system: str
    params: SamplingParams


@dataclass
class Settings:
    """The settings the tabs run with now: Ctrl+G in Chat sets ``chat``, and Compare and Batch read it at Start
    (and show it before), so every tab measures under what the user set."""

    chat: ChatSettings


@dataclass(frozen=True)
class AppContext:
    config: Config
    model: ModelSpec  # the model loaded at start
    sessions_dir: Path
    params: SamplingParams = field(default_factory=SamplingParams)
    # How a spec becomes a LoadedModel: the real backends, except in UI tests that script the events.
    loader: Callable[[ModelSpec], LoadedModel] = load_model
    # Files and folders the app wrote (session logs, run folders): `taskclock chat` says where they went on exit.
    written: list[Path] = field(default_factory=list)
    # What the last launch left (theme, chat settings) and where changes go; None: nothing is remembered.
    remembered: Remembered = field(default_factory=Remembered)
    remembered_path: Path | None = None
    remembered_problem: str | None = None  # the remembered file could not be read: shown once, then ignored
    settings: Settings = field(init=False)  # starts as the remembered system prompt and ``params``

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", Settings(ChatSettings(self.remembered.system, self.params)))

    def wrote(self, path: Path) -> None:
        if path not in self.written:
            self.written.append(path)
