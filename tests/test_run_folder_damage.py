"""Damaged run folders and concurrent resumes (issue 11, items 10, 13 and 14).

Root causes: run folders were read by ad-hoc code that trusted every line and key (one damaged line or a
hand-edited run.toml crashed --resume and export), nothing stopped two runners on one folder, and --resume
silently ignored the options that would change the run. A real bench run (SmolLM2, two questions) is made
once and copied into each test, then damaged the way a crash, an editor or a copy would.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, run_cli
from hostile_server import running_hostile_server

from taskclock.runtime import runfolder

GUARD_S = 300


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    result = run_cli("bench", "--models", "smollm2", "--tasks", "mc", "--limit", "2", "--warmup", "0",
                     "--max-tokens", "8", "--out", str(out), "--no-plots",
                     timeout=GUARD_S)
    assert result.returncode == 0, result.stderr
    return next(out.iterdir())


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / finished_run.name))


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr[-2000:]


def good_row(folder: Path) -> dict:
    return json.loads((folder / runfolder.RESULTS_FILE).read_text().splitlines()[0])


DAMAGED_LINES = {
    "json_array": lambda row: b"[1, 2, 3]\n",
    "row_without_task": lambda row: json.dumps({k: v for k, v in row.items() if k != "task"}).encode() + b"\n",
    "row_without_error": lambda row: json.dumps({k: v for k, v in row.items() if k != "error"}).encode() + b"\n",
    "failure_without_error": lambda row: b'{"kind": "failure", "model": "smollm2"}\n',
    "invalid_utf8": lambda row: json.dumps(row).encode()[:-2] + b'\xff\xfe"}\n',
    "list_qid": lambda row: json.dumps({**row, "qid": ["a", "b"], "task": "paraphrase"}).encode() + b"\n",
    "string_metric": lambda row: json.dumps({**row, "qid": "x/1", "task_time_s": "fast"}).encode() + b"\n",
    "nan_metric": lambda row: json.dumps({**row, "qid": "x/2", "decode_tps": float("nan")}).encode() + b"\n",
    "unknown_kind": lambda row: b'{"kind": "surprise"}\n',
    "deep_json": lambda row: b"[" * 100_000 + b"]" * 100_000 + b"\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_LINES))
def test_a_damaged_results_line_is_skipped_counted_and_reported(run_copy, damage):
    with open(run_copy / runfolder.RESULTS_FILE, "ab") as handle:
        handle.write(DAMAGED_LINES[damage](good_row(run_copy)))
    exported = run_cli("export", str(run_copy), timeout=GUARD_S)
    assert_no_traceback(exported)
    assert exported.returncode == 0
    assert "skipped 1 damaged line(s) in results.jsonl (first: line 3:" in exported.stderr
    summary = json.loads((run_copy / "summary.json").read_text())
    assert summary["rows"] == 2 and len(summary["damaged_lines"]) == 1
    resumed = run_cli("bench", "--resume", str(run_copy), "--no-plots", timeout=GUARD_S)
    assert_no_traceback(resumed)
    assert resumed.returncode == 0 and "skipped 1 damaged line(s)" in resumed.stderr


def _without_models(text: str) -> str:
    return 'models = "x"\n' + re.sub(r'\[models\.[^\n]*\n(?:[^\[\n][^\n]*\n)*', "", text)


DAMAGED_PLANS = {
    "run_as_array": (lambda text: text.replace("[run]\n", "[[run]]\n"), "[run] must be a table"),
    "models_string": (_without_models, "[models] must be a table of tables"),
    "temperature_string": (lambda text: re.sub(r"(?m)^temperature = .*$", 'temperature = "hot"', text),
                           "[run] temperature must be a finite number"),
    "limit_missing": (lambda text: re.sub(r"(?m)^limit = .*\n", "", text), "[run] has no limit"),
    "ids_not_strings": (lambda text: re.sub(r"(?m)^ids = .*$", "ids = [1, 2]", text), "[selection] ids"),
    "bad_template": (lambda text: re.sub(r"(?m)^template = .*$", 'template = "{nope} {question.__class__}"', text,
                                         count=1), "unknown template field(s) nope, question.__class__"),
}


@pytest.mark.parametrize("command", ["export", "resume"])
@pytest.mark.parametrize("damage", sorted(DAMAGED_PLANS))
def test_a_bad_run_toml_is_one_line_naming_the_key(run_copy, damage, command):
    edit, words = DAMAGED_PLANS[damage]
    path = run_copy / runfolder.RUN_FILE
    path.write_text(edit(path.read_text()))
    args = ["export", str(run_copy)] if command == "export" else ["bench", "--resume", str(run_copy)]
    result = run_cli(*args, timeout=GUARD_S)
    assert_no_traceback(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("taskclock: error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert words in errors[0] and str(path) in errors[0]


@pytest.mark.parametrize("option", [["--models", "smollm2-hf"], ["--tasks", "explain"], ["--limit", "5"],
                                    ["--subjects", "anatomy"], ["--max-tokens", "4"]])
def test_resume_refuses_options_that_would_change_the_run(run_copy, option):
    result = run_cli("bench", "--resume", str(run_copy), *option, timeout=GUARD_S)
    assert_no_traceback(result)
    assert result.returncode == 2
    assert result.stderr.startswith("taskclock: error: --resume continues a run as it was planned, so "
                                    f"{option[0]} cannot change it")


def test_a_second_resume_of_a_folder_in_use_says_who_holds_it(tmp_path):
    """A real run holds its folder (its model is a server that never finishes a line); a second process
    resuming the same folder is refused with the first one's pid, and the first one goes on."""
    with running_hostile_server() as server:
        first = subprocess.Popen([sys.executable, "-m", "taskclock", "bench", "--models", server.url("trickle"),
                                  "--tasks", "mc", "--limit", "1", "--warmup", "0",
                                  "--out", str(tmp_path), "--no-plots"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + GUARD_S
            while server.posts("trickle") == 0 and time.monotonic() < deadline and first.poll() is None:
                time.sleep(0.05)
            assert server.posts("trickle") == 1
            folder = next(tmp_path.iterdir())
            second = run_cli("bench", "--resume", str(folder), timeout=GUARD_S)
            assert_no_traceback(second)
            errors = [line for line in second.stderr.splitlines() if line.startswith("taskclock: error:")]
            assert second.returncode == 2
            assert errors == [f"taskclock: error: {folder} is in use by another taskclock bench (pid {first.pid}); "
                              "wait for it to finish, or stop it first"]
            assert first.poll() is None and server.posts("trickle") == 1  # the second one ran nothing
        finally:
            first.send_signal(signal.SIGINT)
            _, err = first.communicate(timeout=GUARD_S)
    assert first.returncode == 130, err


def test_the_lock_is_released_when_the_run_ends(run_copy):
    with runfolder.locked(run_copy):
        pass
    with runfolder.locked(run_copy):  # a lock left behind by a finished run would refuse this
        pass
