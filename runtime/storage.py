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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .errors import DataError, StorageError, TaskclockError
from .untrusted import parse_json, safe_line


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
    append_all(path, [record])


def append_all(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Records appended as one write and one fsync (a load rate's rows and its closing record together)."""
    append_bytes(path, b"".join((json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
                                for record in records))


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


# ---- reading outside files: one gate ---------------------------------------------------------------
# Every file taskclock reads on a user's behalf (logs, run folders, imports, configs, remembered settings, a
# prompt file) may come from elsewhere: each is read through open_outside, with its kind's cap.
TEXT_MAX_BYTES = 16 << 20  # a config, theme, remembered settings, run.toml, system.json, a prompt file
JSON_MAX_BYTES = 1 << 30  # an imported timing file, parsed whole
LOG_MAX_BYTES = 4 << 30  # a session log or results.jsonl, read a line at a time
LINE_MAX_BYTES = 16 << 20  # one line of a log: beyond this it is damage, not a record


def _size(limit: int) -> str:
    return f"{limit >> 30} GiB" if limit >= 1 << 30 else f"{limit >> 20} MiB"


def open_outside(path: Path, what: str, limit: int, error: type[TaskclockError] = DataError) -> BinaryIO:
    """A binary handle on the outside file ``path``: a regular file (a FIFO would block the open or the read
    for ever, ``/dev/zero`` never end, a folder not read) of at most ``limit`` bytes. The file is looked at
    before it is opened, opened without blocking and looked at again. Anything else is one ``error`` naming
    the file as "``what`` PATH"."""
    name = f"{what} {safe_line(path)}"
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                os.close(fd)
    except FileNotFoundError:
        raise error(f"{name} does not exist", "check the path") from None
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}", "check the file") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{name} is not a regular file (a device, FIFO or folder)", "pass a regular file")
    if info.st_size > limit:
        os.close(fd)
        raise error(f"{name} is larger than {_size(limit)}", "pass a smaller file")
    return os.fdopen(fd, "rb")


def read_all(handle: BinaryIO, name: str, limit: int, error: type[TaskclockError] = DataError) -> str:
    """All of an open outside stream (a file through open_outside, or stdin) as UTF-8 text, if it holds at most
    ``limit`` bytes; ``name`` is how errors call it."""
    try:
        data = handle.read(limit + 1)
    except OSError as exc:  # EIO and the like, mid-read
        raise error(f"cannot read {name}: {exc.strerror or exc}", "check the file") from None
    if len(data) > limit:  # stdin, or a file that grew after the look
        raise error(f"{name} is larger than {_size(limit)}", "pass a smaller file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{name} is not valid UTF-8 (byte {exc.start})", "save it as UTF-8") from None


def read_text(path: Path, what: str, limit: int = TEXT_MAX_BYTES, error: type[TaskclockError] = DataError) -> str:
    """The whole of an outside UTF-8 file, through open_outside."""
    with open_outside(path, what, limit, error) as handle:
        return read_all(handle, f"{what} {safe_line(path)}", limit, error)


def read_json(path: Path, what: str, limit: int = TEXT_MAX_BYTES, error: type[TaskclockError] = DataError) -> Any:
    """An outside JSON file, through open_outside and untrusted.parse_json."""
    text = read_text(path, what, limit, error)
    try:
        return parse_json(text)
    except ValueError as exc:
        raise error(f"cannot read {what} {safe_line(path)} as JSON: {safe_line(exc)}", "check the file") from None


def read_lines(path: Path, what: str = "log") -> Iterator[tuple[int, Any, str]]:
    """``(line number, record, "")`` for each complete line of a JSONL file that parses, ``(number, None, reason)``
    for one that does not (over LINE_MAX_BYTES, not UTF-8, not JSON, too deep, a number too long): readers skip
    and count those. Blank lines are left out, and so is a torn last line (a writer killed mid-line)."""
    try:
        with open_outside(path, what, LOG_MAX_BYTES) as handle:
            for number, line in enumerate(iter(lambda: handle.readline(LINE_MAX_BYTES + 1), b""), 1):
                if len(line) > LINE_MAX_BYTES and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):  # the rest of the over-long line
                        line = handle.readline(LINE_MAX_BYTES + 1)
                    yield number, None, f"longer than {_size(LINE_MAX_BYTES)}"
                elif line.endswith(b"\n") and line.strip():
                    try:
                        yield number, parse_json(line), ""
                    except UnicodeDecodeError:
                        yield number, None, "not UTF-8"
                    except ValueError:
                        yield number, None, "not JSON"
    except OSError as exc:
        raise DataError(f"cannot read {what} {safe_line(path)}: {exc.strerror or exc}", "check the file") from None


def read(path: Path, what: str = "log") -> Iterator[Any]:
    """Every complete record that parses; damaged lines and a torn final line are skipped."""
    return (record for _, record, reason in read_lines(path, what) if not reason)


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


def write_atomic(path: Path, text: str, *, replace: bool = True, mode: int = 0o644) -> None:
    """Write a whole file at once (exports, summaries, run configs): readers see old or new, never half.

    The text goes to a temporary file beside ``path``, then is renamed onto it. Only a regular file is ever
    replaced; with ``replace=False`` an existing ``path`` is an error (the rename cannot clobber a file that
    appears meanwhile: it is a hard link, which fails when the name exists). ``mode``: the new file's permissions
    (a rewritten file keeps its own).
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
        os.fchmod(fd, mode)
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


def move_new(source: Path, target: Path) -> Path:
    """Move the file ``source`` to ``target``, or to ``stem-2``, ``stem-3``… if that name is taken (as create_new
    names files): a move never replaces a file. Returns where it went. Raises StorageError."""
    candidate, number = Path(target), 1
    while True:
        try:
            _link_new(Path(source), candidate)
            break
        except FileExistsError:
            number += 1
            candidate = Path(target).with_name(f"{Path(target).stem}-{number}{Path(target).suffix}")
        except OSError as exc:
            raise _storage_error(candidate, exc) from None
    try:
        Path(source).unlink(missing_ok=True)  # linked: the old name goes; renamed (no hard links): already gone
    except OSError as exc:
        raise _storage_error(Path(source), exc) from None
    return candidate


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
