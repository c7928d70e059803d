"""Append-only JSONL files that survive crashes and concurrent writers.

Each record is serialised first and written with a single ``write()`` on a file opened with O_APPEND,
under an exclusive ``flock``, then fsynced: a crash loses at most the record being written, and two
processes appending to one file never interleave. Readers skip a torn last line instead of failing.

Run folders and session logs are shared, so a write never goes through a link: appends and locks open
their file with ``own_file`` (O_NOFOLLOW, a regular file with no other name), whole files are renamed
into place and never replace a link, a device or a folder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import StorageError


def _storage_error(path: Path, exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return StorageError(f"the disk is full: cannot write {path}",
                            "free some space; nothing already written was lost")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write {path}: permission denied", "choose a writable folder")
    return StorageError(f"cannot write {path}: {exc.strerror or exc}", "check the folder")


def ensure_dir(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _storage_error(folder, exc) from None
    if not os.access(folder, os.W_OK):
        raise StorageError(f"cannot write to {folder}: permission denied", "choose a writable folder")
    return folder


def create_new(path: Path) -> Path:
    """Create an empty file at ``path``, or at ``stem-2``, ``stem-3``… if that name is taken: two writers that
    pick the same name (two sessions started in the same second) get a file each. Returns the path created."""
    candidate, number = path, 1
    while True:
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return candidate
        except FileExistsError:
            number += 1
            candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        except OSError as exc:
            raise _storage_error(candidate, exc) from None


def _not_regular(path: Path, mode: int) -> str:
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a regular file"
    return f"{path} is {kind}; taskclock only writes regular files"


def own_file(path: Path, flags: int = os.O_RDWR | os.O_APPEND) -> int:
    """An fd on the regular file at ``path`` itself (created if missing), for an append or a lock.

    A write never reaches another file through this name: a symbolic link is refused (O_NOFOLLOW: a shared run
    folder's ``results.jsonl -> /etc/passwd`` would otherwise take the rows, as root any file on the machine), so
    is a device or FIFO (looked at before opening, which has side effects on some devices) and a file with other
    names (a hard link carries the write to a file elsewhere). Raises StorageError naming the file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    except OSError as exc:
        raise _storage_error(path, exc) from None
    if not stat.S_ISREG(mode):
        raise StorageError(_not_regular(path, mode), "remove it, or choose another folder")
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link put there after the look
            raise StorageError(_not_regular(path, stat.S_IFLNK), "remove it, or choose another folder") from None
        raise _storage_error(path, exc) from None
    info = os.fstat(fd)
    problem = "" if stat.S_ISREG(info.st_mode) else _not_regular(path, info.st_mode)
    if not problem and info.st_nlink > 1:
        problem = f"{path} is a hard link ({info.st_nlink} names); taskclock only writes a file that has one name"
    if problem:
        os.close(fd)
        raise StorageError(problem, "remove it, or choose another folder")
    return fd


def append(path: Path, record: dict[str, Any]) -> None:
    append_bytes(path, (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))


def append_bytes(path: Path, line: bytes) -> None:
    """One ``line`` (ending in a newline) appended whole under the file's lock, or not at all."""
    fd = own_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = os.lseek(fd, 0, os.SEEK_END)
        if start and os.pread(fd, 1, start - 1) != b"\n":
            line = b"\n" + line  # a writer killed mid-line left a torn tail: end it, or this record joins it
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # a device (/dev/full) cannot be truncated; a file can
                os.ftruncate(fd, start)  # never leave half a record behind
            raise
    except OSError as exc:
        raise _storage_error(path, exc) from None
    finally:
        os.close(fd)


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete record; a torn final line (the process died mid-write) is skipped."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def _refuse_special(path: Path) -> None:
    """A symlink, device, FIFO or folder at ``path`` is never replaced: a rename would swap the link itself or
    the device node (``-o /dev/null`` as root) for a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _storage_error(path, exc) from None
    if not stat.S_ISREG(mode):
        raise StorageError(_not_regular(path, mode), "choose another file name")


def write_atomic(path: Path, text: str, *, replace: bool = True) -> None:
    """Write a whole file at once (exports, summaries, run configs): readers see old or new, never half.

    The text goes to a temporary file beside ``path``, then is renamed onto it. Only a regular file is ever
    replaced; with ``replace=False`` an existing ``path`` is an error (the rename cannot clobber a file that
    appears meanwhile: it is a hard link, which fails when the name exists).
    """
    path = Path(path)
    _refuse_special(path)
    exists = StorageError(f"{path} already exists", "choose another output file, or pass --force to replace it")
    if not replace and os.path.lexists(path):
        raise exists
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise _storage_error(path, exc) from None
    partial = Path(name)
    try:
        os.fchmod(fd, 0o644)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _refuse_special(path)
        if replace:
            os.replace(partial, path)
        else:
            _link_new(partial, path)
    except FileExistsError:
        raise exists from None
    except OSError as exc:
        raise _storage_error(path, exc) from None
    finally:
        partial.unlink(missing_ok=True)


def _link_new(source: Path, target: Path) -> None:
    """Give ``source`` the new name ``target``, failing if ``target`` exists (a hard link never replaces)."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(target):  # a filesystem without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(source, target)
