"""Live runs: the plumbing the Chat, Compare and Batch tabs share for work that streams into the UI.

A run's job works in a thread and only appends to the live state the UI reads (tui/live.py);
when it ends it returns one typed message (tui/messages.py) that is posted to the pane, so every change of
pane state happens on the UI thread. While a run is on, a timer calls the pane's ``repaint`` at most
REPAINT_HZ times a second: however fast tokens arrive, the UI does a bounded amount of work.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from taskclock.runtime.errors import TaskclockError

from .messages import RunFailed, SessionRead, SessionReadFailed

REPAINT_HZ = 10  # the low end of 10-30 Hz: on 2 cores every UI millisecond is taken from the model
ENDED = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)


def describe_error(error: BaseException) -> str:
    """A TaskclockError is already a user message; anything else gets its type so it can be reported."""
    return str(error) if isinstance(error, TaskclockError) else f"{type(error).__name__}: {error}"


def post_from_thread(node: Widget, job: Callable[[], Message], failed: Callable[[BaseException], Message],
                     group: str) -> Worker[None]:
    """Run ``job`` in a thread worker and post the message it returns (or ``failed(error)``) to ``node``."""

    def work() -> None:
        try:
            message = job()
        except Exception as exc:  # reported as a message, never raised into the app
            message = failed(exc)
        node.post_message(message)

    return node.run_worker(work, thread=True, exclusive=True, exit_on_error=False, group=group)


def read_in_worker(screen: Screen, read: Callable[[], list[dict[str, Any]]]) -> None:
    """Read a session log (``read()``) in a thread worker and post SessionRead, or SessionReadFailed, to
    ``screen``: a 50 MB log takes seconds to read, and the screen must answer Esc meanwhile. A newer read
    replaces an older one (exclusive), and a screen closed meanwhile simply never receives it."""
    post_from_thread(screen, lambda: SessionRead(read()), SessionReadFailed, group="read-session")


class LivePane(Vertical):
    """A tab that runs one live job at a time, repaints it on a throttled timer, and can stop it.

    Subclasses implement ``repaint`` and a handler for each message their jobs return; a job that raises
    arrives as ``RunFailed``. ``running`` drops once the job's message has been handled. Textual calls the
    ``on_mount``/``on_unmount`` of every class in the MRO, so a subclass's own handlers do not call super().
    """

    running: reactive[bool] = reactive(False, init=False)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cancel = threading.Event()
        self._run: Worker[None] | None = None

    def on_mount(self) -> None:
        self._ticker = self.set_interval(1 / REPAINT_HZ, self.repaint, pause=True)

    def repaint(self) -> None:
        """Show the run's progress so far (called on the UI thread, at most REPAINT_HZ times a second)."""
        raise NotImplementedError

    def start_run(self, job: Callable[[threading.Event], Message]) -> None:
        """Run ``job(cancel)`` in a thread; the message it returns is posted to this pane."""
        cancel = self.cancel = threading.Event()
        self.running = True
        self._run = post_from_thread(self, lambda: job(cancel), RunFailed, group=f"live-{self.id}")

    def watch_running(self, running: bool) -> None:
        if running:
            self._ticker.resume()
        else:
            self._ticker.pause()
        self.refresh_bindings()  # Stop shows in the footer only while a run is on

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The job's own message was posted before its worker ended, so it has been handled by now.
        if event.worker is self._run and event.state in ENDED:
            event.stop()
            self._run = None
            self.running = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.running or None  # dimmed in the footer, and the key passes through
        return True

    def action_stop(self) -> None:
        if self.running:
            self.cancel.set()

    def on_unmount(self) -> None:
        self.cancel.set()  # a job still running is left to the exiting process
