"""Issue 21, S2 and S3, through the real `taskclock` command: every outside file passes one gate (a regular file,
a size cap, UTF-8), outside JSON is parsed defensively at one reader, every value with a unit has a range checked
where it enters, numbers are read as ASCII, plans are bounded, and run.toml and remembered settings are held to
the same ranges as flags. Each input is one clear line and a non-zero exit, never a traceback or a hang."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import one_error_line, run_cli

from taskclock.runtime import bench, mmlu, remembered, runfolder, sessions, storage, sweep, tasks, values
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.models import resolve

GUARD_S = 120  # a hang fails the test instead of blocking the run
DEEP = "[" * 100_000 + "]" * 100_000
LONG_NUMBER = "1" + "0" * 5000
GOOD_TURN = {"kind": "chat", "model": "m", "prompt": "Name a colour.", "reply": "Blue.",
             "metrics": {"ttft_s": 0.1, "output_tokens": 2, "task_time_s": 0.2}, "token_offsets_ms": [100.0, 150.0]}


def special(tmp_path: Path, kind: str, name: str = "input") -> Path:
    """A FIFO nobody writes to (an open or a read would block for ever), or a link to /dev/zero (never ends)."""
    path = tmp_path / name
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    return path


def log_with_bad_lines(path: Path) -> Path:
    """A session log: a 100,000-deep line, a 5,000-digit number, then one good turn."""
    path.write_text(f"{DEEP}\n" + f'{{"kind": "chat", "metrics": {{}}, "n": {LONG_NUMBER}}}\n'
                    + json.dumps(GOOD_TURN) + "\n")
    return path


def bench_folder(runs: Path, **head) -> Path:
    folder, _ = bench.prepare(models=[resolve("smollm2")], task_list=tasks.resolve(["mc"], {}), data=mmlu.load(None),
                              subjects=None, limit=1, seed=0, batch_size=1, warmup=0, max_tokens=4,
                              sampling=SamplingParams(), runs_dir=runs)
    return edit_run_toml(folder, **head) if head else folder


def edit_run_toml(folder: Path, **head) -> Path:
    """run.toml with [run] values replaced, as a hand edit or a damaged copy would leave it."""
    lines = (folder / runfolder.RUN_FILE).read_text().splitlines()
    for key, value in head.items():
        lines = [f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in lines]
    (folder / runfolder.RUN_FILE).write_text("\n".join(lines) + "\n")
    return folder


# ---- one gate for every outside file --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "zero"])
@pytest.mark.parametrize("command", [
    ["import", "{path}", "-o", "{out}"],
    ["import", "{path}", "--format", "genai-perf", "-o", "{out}"],
    ["import", "{path}", "--format", "llama", "-o", "{out}"],
    ["replay", "{path}"],
    ["export", "{path}", "-o", "{out}"],
    ["run", "hi", "--config", "{path}"],
    ["run", "--prompt-file", "{path}"],
])
def test_a_fifo_or_dev_zero_given_to_a_reader_is_one_line(tmp_path, kind, command):
    path = special(tmp_path, kind)
    args = [a.format(path=path, out=tmp_path / "out.jsonl") for a in command]
    line = one_error_line(run_cli(*args, timeout=GUARD_S, cwd=tmp_path))
    assert f"{path} is not a regular file (a device, FIFO or folder)" in line
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("kind", ["fifo", "zero"])
@pytest.mark.parametrize("name", [runfolder.RESULTS_FILE, runfolder.RUN_FILE])
def test_a_fifo_or_dev_zero_inside_a_run_folder_is_one_line(tmp_path, kind, name):
    folder = bench_folder(tmp_path / "runs")
    (folder / name).unlink(missing_ok=True)
    special(folder, kind, name)
    for command in (["export", str(folder)], ["bench", "--resume", str(folder), "--no-plots"]):
        line = one_error_line(run_cli(*command, timeout=GUARD_S))
        # read as "not a regular file"; a link to /dev/zero as results.jsonl is refused by the lock first (S1)
        assert f"{folder / name} is not a regular file" in line or f"{folder / name} is a symbolic link" in line


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_fifo_or_dev_zero_as_system_json_is_left_out_of_the_summary(tmp_path, kind):
    folder = bench_folder(tmp_path / "runs")
    (folder / runfolder.SYSTEM_FILE).unlink()
    special(folder, kind, runfolder.SYSTEM_FILE)
    done = run_cli("export", str(folder), timeout=GUARD_S)
    assert done.returncode == 0 and "Traceback" not in done.stderr


def test_a_session_file_that_is_a_fifo_never_hides_the_others(tmp_path):
    folder = tmp_path / "sessions"
    storage.append(storage.ensure_dir(folder) / "20261123-090000-good.jsonl", GOOD_TURN)
    special(folder, "fifo", "20261123-100000-pipe.jsonl")
    special(folder, "zero", "20261123-110000-zero.jsonl")
    assert [s.path.name for s in sessions.list_sessions(folder)] == ["20261123-090000-good.jsonl"]


def test_a_file_over_the_cap_is_refused_without_being_read(tmp_path):
    big = tmp_path / "config.toml"
    with open(big, "wb") as handle:
        handle.truncate(storage.TEXT_MAX_BYTES + 1)  # sparse: nothing to read, but its size says enough
    line = one_error_line(run_cli("run", "hi", "--config", str(big), timeout=GUARD_S))
    assert f"config file {big} is larger than 16 MiB" in line


# ---- outside JSON, parsed defensively at one reader ----------------------------------------------------

def test_deep_and_long_number_lines_are_skipped_by_replay_and_export(tmp_path):
    log = log_with_bad_lines(tmp_path / "log.jsonl")
    shown = run_cli("replay", str(log), "--json", "--speed", "100", timeout=GUARD_S)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["text"] == "Blue."
    exported = run_cli("export", str(log), "-o", str(tmp_path / "out.csv"), timeout=GUARD_S)
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 2  # the header and the good turn


def test_deep_and_long_number_lines_never_hide_a_session_in_the_list(tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    log_with_bad_lines(folder / "20261123-090000-mixed.jsonl")
    (folder / "20261123-100000-bad.jsonl").write_text(f"{DEEP}\n{{\"metrics\": {{}}, \"x\": {LONG_NUMBER}}}\n")
    storage.append(folder / "20261123-110000-good.jsonl", GOOD_TURN)
    listed = {s.path.name: s.turns for s in sessions.list_sessions(folder)}
    assert listed == {"20261123-090000-mixed.jsonl": 1, "20261123-110000-good.jsonl": 1}


def test_deep_and_long_number_lines_in_results_are_counted_as_damage(tmp_path):
    folder = bench_folder(tmp_path / "runs")
    (folder / runfolder.RESULTS_FILE).write_text(f"{DEEP}\n{{\"kind\": \"result\", \"qid\": {LONG_NUMBER}}}\n")
    done = run_cli("export", str(folder), timeout=GUARD_S)
    assert done.returncode == 0, done.stderr
    assert "skipped 2 damaged line(s) in results.jsonl (first: line 1: not JSON)" in done.stderr


@pytest.mark.parametrize("content", [DEEP, f'{{"ttfts": [{LONG_NUMBER}]}}'], ids=["deep", "long-number"])
def test_deep_and_long_number_import_files_are_one_line(tmp_path, content):
    source = tmp_path / "vllm.json"
    source.write_text(content)
    line = one_error_line(run_cli("import", str(source), "-o", str(tmp_path / "out.jsonl"), timeout=GUARD_S))
    assert f"cannot read timing file {source} as JSON" in line


def test_deep_and_long_number_system_json_is_left_out(tmp_path):
    folder = bench_folder(tmp_path / "runs")
    for content in (DEEP, f'{{"cpu": {LONG_NUMBER}}}'):
        (folder / runfolder.SYSTEM_FILE).write_text(content)
        assert runfolder.read_system(folder) is None


# ---- ranges for every value with a unit, where it enters ----------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["pace", "--tps", "1e-300"], "--tps must be at least 0.01 and at most 100000, not 1e-300"),
    (["pace", "--ttft", "1e300"], "--ttft must be at least 0 and at most 3600"),
    (["replay", "{log}", "--speed", "1e-300"], "--speed must be at least 0.01 and at most 1000, not 1e-300"),
    (["replay", "{log}", "--speed", "1e300"], "--speed must be at least 0.01 and at most 1000"),
    (["replay", "{offsets}"], "token_offsets_ms are not rising non-negative numbers of at most 86400000 ms"),
    (["replay", "{row}"], "TTFT and decode rate give token times that are not rising non-negative numbers"),
    (["replay", "{task}"], "task_time_s is not a number of seconds from 0 to 86400"),
    (["run", "hi", "--ctx", "1" + "0" * 30], "--ctx must be at least 1 and at most 16777216"),
])
def test_an_overflowing_value_is_one_line(tmp_path, args, words):
    logs = {"log": GOOD_TURN, "offsets": {**GOOD_TURN, "token_offsets_ms": [100.0, 1e15]},
            "row": {"kind": "result", "model": "m", "ttft_s": 1e14, "decode_tps": 10.0, "output_tokens": 3},
            "task": {**GOOD_TURN, "metrics": {**GOOD_TURN["metrics"], "task_time_s": 1e300}}}
    paths = {}
    for name, record in logs.items():
        paths[name] = tmp_path / f"{name}.jsonl"
        storage.append(paths[name], record)
    line = one_error_line(run_cli(*(a.format(**paths) for a in args), timeout=GUARD_S, cwd=tmp_path))
    assert words in line


@pytest.mark.parametrize("body, words", [
    ("timeout_s = 1e300\n", "(line 4): [models.m] timeout_s must be more than 0 and at most 86400, not 1e+300"),
    ("turn_timeout_s = 1e300\n", "[models.m] turn_timeout_s must be more than 0 and at most 86400"),
    ("n_ctx = 1" + "0" * 30 + "\n", "(line 4): [models.m] n_ctx must be at least 1 and at most 16777216"),
    ("threads = 99999999\n", "[models.m] threads must be at least 0 and at most 4096"),
])
def test_an_overflowing_config_value_is_refused_up_front(tmp_path, body, words):
    config = tmp_path / "config.toml"
    config.write_text('[models.m]\nbackend = "http"\nsource = "http://127.0.0.1:9/v1"\n' + body)
    line = one_error_line(run_cli("run", "hi", "--config", str(config), "--model", "m", timeout=GUARD_S))
    assert str(config) in line and words in line


def vllm_file(tmp_path: Path, ttfts: list, itls: list) -> Path:
    source = tmp_path / "vllm.json"
    source.write_text(json.dumps({"ttfts": ttfts, "itls": itls, "output_lens": [3] * len(ttfts),
                                  "generated_texts": ["Blue sky."] * len(ttfts)}))
    return source


def test_an_imported_ttft_or_gap_that_would_overflow_is_skipped(tmp_path):
    source = vllm_file(tmp_path, [0.1, 1e300, 0.1], [[0.02, 0.02], [0.02, 0.02], [0.02, 1e300]])
    out = tmp_path / "out.jsonl"
    done = run_cli("import", str(source), "-o", str(out), timeout=GUARD_S)
    assert done.returncode == 0, done.stderr
    assert "imported 1 request(s), skipped 2" in done.stderr
    assert run_cli("replay", str(out), "--speed", "100", timeout=GUARD_S).returncode == 0
    only_bad = vllm_file(tmp_path, [1e300], [[0.02, 0.02]])
    line = one_error_line(run_cli("import", str(only_bad), "-o", str(tmp_path / "none.jsonl"), timeout=GUARD_S))
    assert "has no successful request to import" in line


def llama_line(prompt_ms: float, predicted_n: int, predicted_ms: float = 100.0) -> str:
    return json.dumps({"content": "Blue sky.", "tokens_predicted": predicted_n + 1, "e2e_ms": prompt_ms + predicted_ms,
                       "timings": {"prompt_n": 5, "prompt_ms": prompt_ms, "predicted_n": predicted_n,
                                   "predicted_ms": predicted_ms}})


def test_imported_llama_timings_out_of_range_are_skipped_and_a_few_bytes_never_stand_for_millions(tmp_path):
    source, out = tmp_path / "timings.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join([llama_line(50.0, 4), llama_line(1e300, 4), llama_line(50.0, values.TOKENS_MAX),
                                 llama_line(50.0, 4, 1e300), "{not json"]) + "\n")
    done = run_cli("import", str(source), "--format", "llama", "-o", str(out), timeout=GUARD_S)
    assert done.returncode == 0, done.stderr
    assert "imported 1 request(s), skipped 4" in done.stderr
    assert run_cli("replay", str(out), "--speed", "100", timeout=GUARD_S).returncode == 0
    greedy = tmp_path / "greedy.jsonl"  # each line in range, together 48 million made-up arrivals
    greedy.write_text("\n".join([llama_line(50.0, values.TOKENS_MAX - 1)] * 3) + "\n")
    line = one_error_line(run_cli("import", str(greedy), "--format", "llama", "-o", str(tmp_path / "no.jsonl"),
                                  timeout=GUARD_S))
    assert f"claims more than {values.TOKENS_MAX:,} tokens in all" in line and not (tmp_path / "no.jsonl").exists()


def test_import_refuses_what_replay_would_refuse(tmp_path):
    """Out-of-order response timestamps: import used to write them, and replay then refused the log as damaged;
    now import skips that request by replay's own rules, and what it writes replays."""
    start = 1_745_526_100_000_000_000
    requests = [{"timestamp": start, "response_timestamps": [start + 300_000_000, start + 100_000_000],
                 "response_outputs": [{"text_output": "a"}, {"text_output": "b"}]},
                {"timestamp": start, "response_timestamps": [start + 100_000_000, start + 300_000_000],
                 "response_outputs": [{"text_output": "a"}, {"text_output": "b"}]}]
    source, out = tmp_path / "profile_export.json", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"experiments": [{"requests": requests}]}))
    done = run_cli("import", str(source), "--format", "genai-perf", "-o", str(out), timeout=GUARD_S)
    assert done.returncode == 0, done.stderr
    assert "imported 1 request(s), skipped 1" in done.stderr
    assert run_cli("replay", str(out), "--json", "--speed", "100", timeout=GUARD_S).returncode == 0


# ---- numbers are read as ASCII -----------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["bench", "--models", "smollm2", "--batch-sizes", "1,²"], "--batch-sizes: '²' is not a whole number of at"),
    (["sweep", "--models", "smollm2", "--input-tokens", "64,²"], "--input-tokens: '²' is not a whole number"),
    (["sweep", "--models", "smollm2", "--input-tokens", "٦٤"], "--input-tokens: '٦٤' is not a whole number"),
    (["bench", "--models", "smollm2", "--limit", "²"], "'²' is not a whole number"),
    (["bench", "--models", "smollm2", "--repeats", "١٢"], "'١٢' is not a whole number"),
    (["run", "hi", "--max-tokens", "１２"], "'１２' is not a whole number"),
    (["run", "hi", "--temperature", "０.５"], "'０.５' is not a number"),
])
def test_unicode_digits_are_not_numbers(tmp_path, args, words):
    out = [] if args[0] == "run" else ["--out", str(tmp_path)]
    line = one_error_line(run_cli(*args, *out, timeout=GUARD_S, cwd=tmp_path))
    assert words in line
    assert not any(tmp_path.glob("*/run.toml"))


# ---- plans are bounded ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["bench", "--models", "smollm2", "--repeats", "1000000000"], "--repeats must be at least 1 and at most 10000"),
    (["sweep", "--models", "smollm2", "--repeats", "1000000000"], "--repeats must be at least 1 and at most 10000"),
    (["bench", "--models", "smollm2", "--batch-sizes", "1,100000"], "--batch-sizes must be at least 1 and at most"),
    (["sweep", "--models", "smollm2", "--input-tokens", "1000000000"], "--input-tokens must be at least 1 and at"),
    (["bench", "--models", "smollm2,smollm2-hf", "--tasks", "mc,explain", "--limit", "14042", "--repeats", "100"],
     "the plan has 5,616,800 rows, more than the 1,000,000 one run may hold"),
])
def test_an_absurd_plan_is_refused_at_once(tmp_path, args, words):
    """`--repeats 1000000000` used to plan for minutes (only SIGKILL stopped it): now one line, before any
    folder is made (the guard is against that hang, not a speed target)."""
    line = one_error_line(run_cli(*args, "--out", str(tmp_path), timeout=GUARD_S))
    assert words in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command, head, words", [
    ("bench", {"repeats": "-1"}, "repeats must be at least 1 and at most 10000, not -1"),
    ("bench", {"limit": "0"}, "limit must be at least 1"),
    ("bench", {"warmup": "100000"}, "warmup must be at least 0 and at most 1000"),
    ("bench", {"temperature": "5.0"}, "temperature must be at least 0 and at most 2, not 5.0"),
    ("bench", {"seed": "-4"}, "seed must be at least 0"),
    ("bench", {"batch_sizes": "[100000]"}, "batch_sizes must be at least 1 and at most 4096"),
    ("sweep", {"output_tokens": "0"}, "output_tokens must be at least 1 and at most 16777216, not 0"),
    ("sweep", {"repeats": "-1"}, "repeats must be at least 1"),
    ("sweep", {"input_tokens": "[1000000000]"}, "input_tokens must be at least 1 and at most 16777216"),
])
def test_run_toml_values_are_range_checked_on_resume(tmp_path, command, head, words):
    if command == "bench":
        folder = bench_folder(tmp_path / "runs", **head)
    else:
        folder, _ = sweep.prepare(models=[resolve("smollm2")], input_tokens=[64], output_tokens=4, repeats=1,
                                  warmup=0, runs_dir=tmp_path / "runs")
        edit_run_toml(folder, **head)
    line = one_error_line(run_cli(command, "--resume", str(folder), "--no-plots", timeout=GUARD_S))
    assert f"{folder / runfolder.RUN_FILE}: [run] {words}" in line
    assert not (folder / runfolder.RESULTS_FILE).exists()  # refused before the lock, before any row


def test_a_huge_model_timeout_in_run_toml_is_refused_on_resume(tmp_path):
    folder = bench_folder(tmp_path / "runs")
    path = folder / runfolder.RUN_FILE
    # an older run.toml held every backend's options in each model's table: still checked where it is read
    path.write_text(path.read_text().replace("threads = 0\n", "threads = 0\ntimeout_s = 1e300\n"))
    assert "timeout_s = 1e300" in path.read_text()
    line = one_error_line(run_cli("bench", "--resume", str(folder), "--no-plots", timeout=GUARD_S))
    assert str(path) in line and "timeout_s must be more than 0 and at most 86400" in line


# ---- remembered settings: damaged in each way, never fatal --------------------------------------------

@pytest.mark.parametrize("content, words", [
    ('{"max_tokens": -3}', "max_tokens must be at least 1"),
    ('{"temperature": NaN}', "temperature must be a finite number, not nan"),
    ('{"top_p": 7}', "top_p must be more than 0 and at most 1"),
    ('{"seed": 99999999999}', "seed must be at least 0 and at most 4294967295"),
    ('{"mmlu": "a\\u0000b"}', "a folder name holds a NUL character"),
    ("[1, 2]", "is not a JSON object"),
    ("{not json", "as JSON"),
    (DEEP, "as JSON: JSON nested too deeply"),
    (f'{{"seed": {LONG_NUMBER}}}', "as JSON"),
    ("\xff\xfe", "is not valid UTF-8"),
    ("fifo", "is not a regular file"),
    ("zero", "is not a regular file"),
], ids=lambda value: value[:24] if len(value) > 24 else value)
def test_a_damaged_remembered_file_warns_naming_it_and_gives_the_defaults(tmp_path, content, words):
    path = tmp_path / remembered.FILE_NAME
    if content in ("fifo", "zero"):
        special(tmp_path, content, remembered.FILE_NAME)
    else:
        path.write_bytes(content.encode("latin-1") if content == "\xff\xfe" else content.encode())
    kept, problem = remembered.load(path)
    assert kept == remembered.Remembered()
    assert problem is not None and str(path) in problem and words in problem and problem.endswith("using defaults")


def test_remembered_models_are_strings_without_nul_and_at_most_the_recent_count(tmp_path):
    path = tmp_path / remembered.FILE_NAME
    names = [f"model-{n}" for n in range(remembered.RECENT_MODELS + 5)]
    path.write_text(json.dumps({"models": ["a\u0000b", 7, None, "", *names]}))
    kept, problem = remembered.load(path)
    assert problem is None and kept.models == tuple(names[:remembered.RECENT_MODELS])
