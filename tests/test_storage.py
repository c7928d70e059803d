"""Append-only logs under faults: concurrent writers, a full disk, an unwritable folder, a torn line."""
import json
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT

from taskclock.runtime import storage
from taskclock.runtime.errors import StorageError

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from taskclock.runtime import storage
    path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(n):
        # sizes from tiny to 200 KB, so a line spans many pages and would tear if writes interleaved
        storage.append(path, {"who": who, "i": i, "pad": "x" * ((i * 7919) % 200_000)})
""")


def test_two_processes_appending_to_one_log_never_interleave(tmp_path):
    path = tmp_path / "shared.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), who, "60"], cwd=ROOT) for who in "ABCD"]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # any interleaving would break a line's JSON
    assert len(records) == 240
    for who in "ABCD":
        assert sorted(r["i"] for r in records if r["who"] == who) == list(range(60))
    assert all(len(r["pad"]) == (r["i"] * 7919) % 200_000 for r in records)


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from taskclock.runtime import storage
    from taskclock.runtime.errors import StorageError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)           # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))  # a file system with 50 KB left
    path = Path(sys.argv[1])
    try:
        for i in range(1000):
            storage.append(path, {"i": i, "pad": "y" * 900})
    except StorageError as exc:
        print(exc)
        sys.exit(3)
""")


def test_disk_full_stops_with_one_line_and_keeps_every_complete_record(tmp_path):
    path = tmp_path / "full.jsonl"
    storage.append(path, {"i": -1, "pad": "before"})
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, str(path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "disk is full" in proc.stdout and "Traceback" not in proc.stderr
    text = path.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # no half record left behind
    assert [r["i"] for r in records] == list(range(-1, len(records) - 1))
    assert len(records) > 10


def test_folder_that_cannot_be_made_is_a_storage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot write"):
        storage.ensure_dir(blocker / "sessions")
    with pytest.raises(StorageError, match="cannot write"):
        storage.append(blocker / "log.jsonl", {"x": 1})


def test_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "torn.jsonl"
    storage.append(path, {"n": 1})
    storage.append(path, {"n": 2})
    with open(path, "a") as handle:
        handle.write('{"n": 3, "text": "the process died he')
    assert [r["n"] for r in storage.read(path)] == [1, 2]


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "summary.md"
    storage.write_atomic(path, "old")
    storage.write_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]
