"""Every mode of the hostile server (tests/hostile_server.py) through the real CLI, and through a bench.

Root causes covered here (issue 11): HTTP streams without client-side limits (items 5 and 6: endless, trickle,
ping-only, gzip bombs, huge lines and error bodies) and chunks whose shape was never checked (item 9: usage,
choices, delta, content, deep JSON, integer model ids). Whatever the server does, `taskclock run` ends with
a clean reply or exactly one `taskclock: error:` line, never a traceback, never a raw escape code, never a hang.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, run_cli
from hostile_server import CAUSE, EXPECT, LOAD_ERROR, MODES, REPLY, SLOW, TURN_ERROR, running_hostile_server

GUARD_S = 120  # a hang fails the test instead of blocking the run
EXIT = {REPLY: 0, TURN_ERROR: 1, LOAD_ERROR: 2}


@pytest.fixture(scope="module")
def hostile():
    with running_hostile_server() as server:
        yield server


def short_timeouts(tmp_path: Path, url: str) -> Path:
    """A config naming the hostile model with idle and turn limits short enough for a test."""
    source, _, model = url.partition("#")
    config = tmp_path / "config.toml"
    config.write_text(f'[models.hostile]\nbackend = "http"\nsource = "{source}"\napi_model = "{model}"\n'
                      f"timeout_s = 1.5\nturn_timeout_s = 3.0\n")
    return config


def assert_clean(result: subprocess.CompletedProcess, expect: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "internal error" not in output
    assert "\x1b" not in output and "\x9b" not in output and "\x07" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("taskclock: error:")]
    assert len(errors) == (0 if expect == REPLY else 1), result.stderr[-2000:]
    assert result.returncode == EXIT[expect], result.stderr[-2000:]


def test_the_server_has_at_least_25_modes_of_each_kind():
    assert len(MODES) >= 25
    assert {EXPECT[mode] for mode in MODES} == {REPLY, TURN_ERROR, LOAD_ERROR}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_through_the_cli_is_a_reply_or_one_error_line(hostile, tmp_path, mode):
    url = hostile.url(mode)
    if mode in SLOW:
        model = ["--model", "hostile", "--config", str(short_timeouts(tmp_path, url))]
    else:
        model = ["--model", url]
    budget = "1000" if mode == "slow_endless" else "16"
    result = run_cli("run", "hi", *model, "--max-tokens", budget, timeout=GUARD_S, cwd=tmp_path)
    assert_clean(result, EXPECT[mode])
    if mode in CAUSE:
        assert CAUSE[mode] in result.stderr
    if EXPECT[mode] == REPLY:
        assert "Hello there" in result.stdout or mode == "endless"


def test_a_server_that_ignores_max_tokens_is_cut_at_the_budget(hostile, tmp_path):
    result = run_cli("run", "hi", "--model", hostile.url("endless"), "--max-tokens", "8", "--json",
                     timeout=GUARD_S, cwd=tmp_path)
    out = json.loads(result.stdout)
    assert result.returncode == 0
    assert out["stop_reason"] == "length" and out["text"] == "word " * 8


def test_json_output_stays_strict_json_when_the_server_sends_nan(hostile, tmp_path):
    result = run_cli("run", "hi", "--model", hostile.url("timings_nan"), "--json", timeout=GUARD_S, cwd=tmp_path)

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    out = json.loads(result.stdout, parse_constant=refuse)
    assert result.returncode == 0 and out["text"] == "Hello there"


def test_ctrl_c_ends_a_trickling_stream_at_once(hostile, tmp_path):
    """One byte every 0.2 s and never a newline: Ctrl-C must not wait for a line that never comes."""
    posted, already = hostile.posts("trickle"), hostile.streamed  # the server is shared: count this run's only
    proc = subprocess.Popen([sys.executable, "-m", "taskclock", "run", "hi", "--model", hostile.url("trickle"),
                             "--no-log"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + GUARD_S
        while hostile.posts("trickle") == posted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hostile.posts("trickle") > posted
        while hostile.streamed - already < 5 and time.monotonic() < deadline:  # the client is inside a line
            time.sleep(0.05)
        assert hostile.streamed - already >= 5
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)  # far under the 60 s idle limit the stream would otherwise hit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "taskclock: error:" not in err


@pytest.mark.parametrize("bad", ["usage_string", "content_int", "deep_json", "choices_string"])
def test_a_malformed_server_in_a_bench_fails_its_own_rows_and_the_good_model_runs(hostile, tmp_path, bad):
    result = run_cli("bench", "--models", f"{hostile.url(bad)},smollm2", "--tasks", "mc", "--limit", "2",
                     "--warmup", "0", "--max-tokens", "8", "--out", str(tmp_path),
                     "--no-plots", timeout=300, cwd=tmp_path)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in next(tmp_path.glob("*/results.jsonl")).read_text().splitlines()]
    good = [r for r in rows if r["model"] == "smollm2"]
    broken = [r for r in rows if r["model"] != "smollm2"]
    assert len(good) == 2 and all(r["stop_reason"] != "error" for r in good)
    assert len(broken) == 2 and all(r["stop_reason"] == "error" and "\n" not in r["error"] for r in broken)
    assert (next(tmp_path.glob("*/summary.json"))).is_file()
