"""Issue 11, item 1, through the real `taskclock export`: an export never clobbers a file. An existing path is
refused unless --force; a link, a device or a FIFO is never replaced, even with --force; the text goes to a
temporary file beside the target and is renamed, so no partial file is left behind."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import compare_log, one_error_line, run_cli


@pytest.fixture
def session(tmp_path) -> Path:
    return compare_log(tmp_path / "sessions", "Name a colour.", "Blue.")


def test_export_refuses_to_overwrite_another_session_log(session, tmp_path):
    other = compare_log(tmp_path / "other", "Another prompt.", "Another reply.")
    before = other.read_bytes()
    line = one_error_line(run_cli("export", str(session), "--format", "jsonl", "-o", str(other)))
    assert "already exists" in line and "--force" in line
    assert other.read_bytes() == before


def test_export_refuses_an_existing_default_target(session):
    target = session.with_name(f"{session.stem}.export.csv")
    target.write_text("my own notes\n")
    line = one_error_line(run_cli("export", str(session)))
    assert "already exists" in line
    assert target.read_text() == "my own notes\n"


def test_export_force_replaces_a_regular_file(session, tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    proc = run_cli("export", str(session), "-o", str(target), "--force")
    assert proc.returncode == 0, proc.stderr
    assert target.read_text().startswith("turn,time,kind")
    assert proc.stdout.strip() == str(target)


def test_export_never_replaces_a_symlink_even_with_force(session, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    line = one_error_line(run_cli("export", str(session), "-o", str(link), "--force"))
    assert "symbolic link" in line
    assert link.is_symlink() and victim.read_text() == "precious\n"


def test_export_never_replaces_a_fifo_even_with_force(session, tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    line = one_error_line(run_cli("export", str(session), "-o", str(fifo), "--force", timeout=60))
    assert "not a regular file" in line
    assert fifo.is_fifo()


def test_export_never_replaces_a_folder(session, tmp_path):
    folder = tmp_path / "out.csv"
    folder.mkdir()
    line = one_error_line(run_cli("export", str(session), "-o", str(folder), "--force"))
    assert "is a folder" in line and folder.is_dir()


def test_a_file_that_is_not_a_session_log_is_not_exported(tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("just some text\nnot json at all\n")
    line = one_error_line(run_cli("export", str(notes), "-o", str(tmp_path / "out.csv")))
    assert "not a taskclock session log" in line
    assert not (tmp_path / "out.csv").exists()
