"""User-facing errors: each carries one line naming the problem and what to do about it.

Anything raised as a TaskclockError is shown to the user as that one line (CLI: stderr and a non-zero
exit; app: a notification). Anything else is a bug and gets a traceback in the log file.
"""
from __future__ import annotations


class TaskclockError(Exception):
    """A problem the user can fix; str() is the one-line message."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


class ModelNotFound(TaskclockError):
    """Unknown alias, missing file, or a hub id that cannot be reached."""


class ModelLoadError(TaskclockError):
    """The model exists but could not be loaded (corrupt file, wrong format, missing library)."""


class UnsupportedHardware(TaskclockError):
    """CUDA or bitsandbytes asked for where they are not available."""


class PromptError(TaskclockError):
    """Empty prompt, or a prompt that does not fit the context."""


class ConfigError(TaskclockError):
    """A config or theme file that cannot be read or has a bad key or value."""


class DataError(TaskclockError):
    """MMLU data missing or malformed, unknown task, or a bad run folder."""


class BackendError(TaskclockError):
    """A failure while generating (server unreachable, stream broken, model raised)."""


class StorageError(TaskclockError):
    """A log or results file that cannot be written (permissions, disk full)."""


class Cancelled(Exception):
    """Work stopped because its cancel flag was set (Ctrl-C, Stop, quitting the app) while a model was asked
    something outside a turn (a token count, its context): not a failure, so a runner reports "stopped" and
    records nothing. Deliberately not a TaskclockError, which is a failure to show."""
