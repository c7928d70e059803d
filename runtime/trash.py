"""The sessions folder's trash: a deleted session log (and its exports) waits in ``.trash/`` for a week.

Deleting moves the files, never removes them; restoring moves them back under their old names (or a free name
beside them). A later launch of the app empties what has waited longer than KEEP_DAYS and says which sessions
went, so nothing is ever lost silently. Each trashed file's name starts with when it was deleted.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from . import storage
from .errors import StorageError
from .sessions import EXPORT_TAG, SUFFIX, is_export

FOLDER = ".trash"  # inside the sessions folder: hidden, and not a *.jsonl the Sessions list would read
KEEP_DAYS = 7
_STAMP = "%Y%m%d-%H%M%S"
_SEP = "--"  # deletion time, then the original name


@dataclass(frozen=True)
class Trashed:
    """One deleted session log in the trash."""

    path: Path
    name: str  # its name before it was deleted
    deleted: datetime


def exports_of(log: Path) -> list[Path]:
    """The export files written beside a session log (NAME.export.FORMAT); a name holding ``[`` or ``*`` (an
    imported log's) matches only itself."""
    return sorted(log.parent.glob(f"{glob.escape(log.stem)}{EXPORT_TAG}.*"))


def _trash_folder(sessions_dir: Path) -> Path | None:
    """The trash folder if it is one (None when there is none yet). A link there is refused: moving sessions
    into it, or emptying it, would reach a folder the user never named."""
    folder = Path(sessions_dir) / FOLDER
    if folder.is_symlink():
        raise StorageError(f"{folder} is a link, not the sessions folder's own trash", "remove the link")
    return folder if folder.is_dir() else None


def trash_session(log: Path, now: datetime | None = None) -> Trashed:
    """Move a session log and its exports into its folder's trash. Raises StorageError."""
    log = Path(log)
    if not log.is_file():
        raise StorageError(f"{log} does not exist", "refresh the list (r)")
    stamp = (now or datetime.now()).strftime(_STAMP)
    folder = _trash_folder(log.parent) or storage.ensure_dir(log.parent / FOLDER)
    moved = storage.move_new(log, folder / f"{stamp}{_SEP}{log.name}")
    for export in exports_of(log):
        storage.move_new(export, folder / f"{stamp}{_SEP}{export.name}")
    return Trashed(moved, log.name, datetime.strptime(stamp, _STAMP))


def _parse(path: Path) -> Trashed | None:
    stamp, sep, name = path.name.partition(_SEP)
    try:
        return Trashed(path, name, datetime.strptime(stamp, _STAMP)) if sep and name else None
    except ValueError:
        return None  # not a file the trash put there: left alone


def list_trash(sessions_dir: Path) -> list[Trashed]:
    """The session logs in the trash, the most recently deleted first (their exports are not listed)."""
    folder = _trash_folder(sessions_dir)
    found = [_parse(p) for p in folder.glob(f"*{SUFFIX}")] if folder else []
    logs = [t for t in found if t is not None and not is_export(Path(t.name))]
    return sorted(logs, key=lambda t: (t.deleted, t.name), reverse=True)


def restore(trashed: Trashed) -> Path:
    """Move a trashed log (and its exports) back into the sessions folder; returns the log's path there (its old
    name, or ``NAME-2`` when a file took that name meanwhile). Raises StorageError."""
    sessions_dir = trashed.path.parent.parent
    prefix = trashed.path.name[: -len(trashed.name)]  # the deletion stamp: its exports share it
    back = storage.move_new(trashed.path, sessions_dir / trashed.name)
    stem = Path(trashed.name).stem
    for export in sorted(trashed.path.parent.glob(f"{glob.escape(prefix + stem)}{EXPORT_TAG}.*")):
        storage.move_new(export, back.with_name(f"{back.stem}{export.name[len(prefix) + len(stem):]}"))
    return back


def empty_trash(sessions_dir: Path, now: datetime | None = None, keep_days: int = KEEP_DAYS) -> list[str]:
    """Remove what was deleted more than ``keep_days`` ago; returns the names of the session logs removed (for the
    app to say). Files the trash did not name are never touched."""
    folder = _trash_folder(sessions_dir)
    if folder is None:
        return []
    cutoff = (now or datetime.now()) - timedelta(days=keep_days)
    removed = []
    for path in sorted(folder.iterdir()):
        item = _parse(path)
        if item is None or item.deleted > cutoff or not path.is_file() or path.is_symlink():
            continue
        try:
            path.unlink()
        except OSError as exc:
            raise StorageError(f"cannot empty the trash: {path}: {exc.strerror or exc}", "check the folder") from None
        if not is_export(Path(item.name)) and item.name.endswith(SUFFIX):
            removed.append(item.name)
    return removed
