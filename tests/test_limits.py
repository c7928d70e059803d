"""Unbounded reads (issue 11, item 6): every file taskclock reads on the user's behalf is read only when it is a
regular file, and only up to a cap, so a device, a FIFO or a huge file is one line instead of a hang or an
exhausted memory. (The HTTP caps, on lines, error bodies and decompressed bytes, are driven through the real
CLI in tests/test_hostile_server.py.)"""
from __future__ import annotations

import os
import shutil

import pytest
from helpers import mmlu_folder, run_cli

from taskclock.runtime.storage import TEXT_MAX_BYTES as MAX_PROMPT_BYTES

GUARD_S = 120


def assert_one_error_line(result, words: str) -> None:
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("taskclock: error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert words in errors[0]


def test_a_device_as_prompt_file_is_refused(tmp_path):
    result = run_cli("run", "--prompt-file", "/dev/zero", timeout=GUARD_S, cwd=tmp_path)
    assert_one_error_line(result, "prompt file /dev/zero is not a regular file (a device, FIFO or folder)")


def test_a_fifo_as_prompt_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "prompt.txt"
    os.mkfifo(fifo)  # nobody ever writes to it: opening it to read would block for ever
    result = run_cli("run", "--prompt-file", str(fifo), timeout=GUARD_S, cwd=tmp_path)
    assert_one_error_line(result, "is not a regular file")


def test_a_prompt_file_over_the_cap_is_refused(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_PROMPT_BYTES + 1)
    result = run_cli("run", "--prompt-file", str(big), timeout=GUARD_S, cwd=tmp_path)
    assert_one_error_line(result, f"is larger than {MAX_PROMPT_BYTES >> 20} MiB")


def test_stdin_over_the_cap_is_refused(tmp_path):
    result = run_cli("run", "--prompt-file", "-", input="x" * (MAX_PROMPT_BYTES + 10), timeout=GUARD_S,
                     cwd=tmp_path)
    assert_one_error_line(result, "prompt file - is larger than")


@pytest.fixture
def mmlu_with_a_fifo(tmp_path):
    folder = tmp_path / "mmlu" / "test"
    folder.mkdir(parents=True)
    shutil.copy(mmlu_folder(tmp_path / "built-in") / "test" / "anatomy_test.csv", folder)
    os.mkfifo(folder / "x_test.csv")
    return folder.parent


def test_a_fifo_named_like_an_mmlu_csv_is_skipped_and_named(mmlu_with_a_fifo, tmp_path):
    result = run_cli("bench", "--models", "smollm2", "--tasks", "mc", "--limit", "1", "--warmup", "0",
                     "--max-tokens", "4", "--mmlu", str(mmlu_with_a_fifo), "--out", str(tmp_path / "runs"),
                     "--no-plots", timeout=GUARD_S, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 1 malformed MMLU row(s), e.g. x_test.csv: not a regular file; skipped" in result.stderr
