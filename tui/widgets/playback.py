"""Recorded or paced turns played back under the live meter, driven by their scheduled timestamps.

A Playback (runtime/replay.py) hands out the events whose time has come; each UI tick shows that prefix
through the same Meter and text widgets a live turn uses, so the meter shows what it showed live. The
text in a Recording has already passed through safe_text.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from taskclock.runtime import metrics
from taskclock.runtime.events import Done, Event
from taskclock.runtime.replay import Playback, Recording

from .compare_column import CompareColumn
from .conversation import Conversation, ReplyTurn
from .meter import IDLE, Meter


class Replayed:
    """One recording's playback: the events due at each tick, and whether the last one has been shown."""

    def __init__(self, recording: Recording, start_ns: int, speed: float) -> None:
        self.recording = recording
        self.playback = Playback(recording.schedule, start_ns, speed)
        self.note = " · ".join([f"replayed at {speed:g}×" if speed != 1 else "replayed", *recording.notes])
        self.shown_final = False

    @property
    def events(self) -> list[Event]:
        """The whole replayed event list (rebased times): what the meter's final figures come from."""
        return self.playback.events

    def due(self, now: int) -> tuple[list[Event], bool]:
        return self.playback.due(now), self.playback.finished(now)

    @property
    def stop_reason(self) -> str:
        done = self.events[-1]
        return done.stop_reason if isinstance(done, Done) else "eos"


class PlaybackChat(Horizontal):
    """One turn replayed like a Chat tab reply: its prompt, the reply streaming, the meter beside it."""

    SCOPED_CSS = False  # the narrow rule selects on the screen's class, outside this widget
    DEFAULT_CSS = """
    PlaybackChat { height: 1fr; }
    PlaybackChat > Conversation { width: 1fr; height: 1fr; padding: 0 1; }
    Screen.-narrow PlaybackChat { layout: vertical; }  /* the meter is a bar under the reply, as in the Chat tab */
    """

    def __init__(self, idle: str = IDLE, **kwargs) -> None:
        """``idle``: the meter's words before the first playback."""
        super().__init__(**kwargs)
        self.idle = idle
        self.current: Replayed | None = None
        self._reply: ReplyTurn | None = None

    def compose(self) -> ComposeResult:
        yield Conversation()
        yield Meter(self.idle)

    @property
    def meter(self) -> Meter:
        return self.query_one(Meter)

    async def begin(self, recording: Recording, start_ns: int, speed: float = 1.0) -> None:
        self.current, self._reply = Replayed(recording, start_ns, speed), None  # before any await: not finished
        self.meter.start()
        conversation = self.query_one(Conversation)
        await conversation.remove_children()
        if recording.prompt:
            conversation.add_prompt(recording.prompt)
        self._reply = conversation.add_reply(recording.label)

    def tick(self, now: int) -> bool:
        """Show what has arrived by ``now``; True once the whole turn is shown."""
        current, reply = self.current, self._reply
        if current is None or current.shown_final:
            return True
        if reply is None:
            return False  # still setting up
        events, finished = current.due(now)
        if finished:
            current.shown_final = True
            self.query_one(Conversation).finish_reply(reply, metrics.output_text(events), current.note,
                                                      current.stop_reason)
            self.meter.show_final(events)
        else:
            self.meter.show_live(events, now)
            reply.show(metrics.output_text(events))
        return current.shown_final


class PlaybackColumn(CompareColumn):
    """One turn replayed in a Compare-tab column, under its own meter."""

    def __init__(self, recording: Recording, **kwargs) -> None:
        super().__init__(recording.label, **kwargs)
        self.recording = recording
        self.current: Replayed | None = None

    def begin(self, start_ns: int, speed: float = 1.0) -> None:
        self.current = Replayed(self.recording, start_ns, speed)
        self.waiting("waiting for the first token")
        self.border_subtitle = ""

    def tick(self, now: int) -> bool:
        current = self.current
        if current is None or current.shown_final:
            return True
        events, finished = current.due(now)
        if finished:
            current.shown_final = True
            self.show_final(events, current.note)
        else:
            self.show_live(events, now)
        return current.shown_final
