"""Issue 11, item 15, through the real `taskclock` command: messages that named the wrong cause now name the
right one."""
from __future__ import annotations

import pytest
from helpers import one_error_line, run_cli

from taskclock.runtime import values


def test_a_folder_named_like_a_gguf_file_is_called_a_folder(tmp_path):
    folder = tmp_path / "d.gguf"
    folder.mkdir()
    line = one_error_line(run_cli("run", "hi", "--model", str(folder)))
    assert "is a folder, not a .gguf file" in line and "does not exist" not in line


def test_a_blank_model_name_is_not_taken_for_the_working_directory(tmp_path):
    line = one_error_line(run_cli("run", "hi", "--model", " ", cwd=tmp_path))
    assert "the model name is empty" in line


def test_a_huge_context_is_blamed_on_the_context_not_the_file():
    """The largest context the range allows (values.TOKENS_MAX) still fails to allocate for SmolLM2: blamed on it."""
    line = one_error_line(run_cli("run", "hi", "--model", "smollm2", "--ctx", str(values.TOKENS_MAX), timeout=300))
    assert f"context of {values.TOKENS_MAX} tokens" in line and "smaller --ctx" in line and "corrupt" not in line


def test_all_mixed_with_subjects_says_so(tmp_path):
    line = one_error_line(run_cli("bench", "--models", "smollm2", "--subjects", "all,anatomy",
                                  "--out", str(tmp_path)))
    assert "'all' cannot be combined with other subjects" in line and "unknown" not in line


def test_models_lists_a_config_entry_that_shadows_a_builtin_once(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[models.smollm2]\nbackend = "http"\nsource = "http://127.0.0.1:9/v1"\n'
                      'description = "my own smollm2"\n')
    proc = run_cli("models", "--config", str(config), env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "smollm2 (default)" in line]
    assert len(rows) == 1 and "my own smollm2" in rows[0]


def test_models_says_default_once_and_follows_the_config(tmp_path):
    """The default is marked by the name column alone (it follows defaults.model), never in a description."""
    proc = run_cli("models", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(default)") == 1 and "smollm2 (default)" in proc.stdout
    config = tmp_path / "config.toml"
    config.write_text('[defaults]\nmodel = "gemma3-270m"\n')
    moved = run_cli("models", "--config", str(config), env={"COLUMNS": "200"})
    assert moved.stdout.count("(default)") == 1 and "gemma3-270m (default)" in moved.stdout


@pytest.mark.parametrize(("args", "words", "command"), [
    (["pace", "--ttft", "soon"], "argument --ttft: 'soon' is not a number", "taskclock pace"),
    (["run", "hi", "--max-tokens", "abc"], "'abc' is not a whole number", "taskclock run"),
    (["export"], "required: source", "taskclock export"),
    (["bench", "--tasks", "mc", "--format", "x"], "unrecognized arguments", "taskclock"),
])
def test_argparse_errors_are_one_line_like_every_other_error(args, words, command):
    """No usage block: the same one `taskclock: error:` line and exit 2 as any other bad input, naming --help."""
    proc = run_cli(*args)
    line = one_error_line(proc)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
    assert words in line and f"`{command} --help`" in line
