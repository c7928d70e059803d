"""Messages that travel upward between the app's widgets (one-line dataclasses)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message


@dataclass
class SendPrompt(Message):
    """The user pressed Enter in the prompt box."""

    text: str


@dataclass
class OpenSession(Message):
    """The user picked a past session in the Sessions view."""

    path: Path
