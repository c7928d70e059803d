"""Issue 7, the cases no other test file covers: the real `taskclock` command (or the real app in its own
process) under hostile input and faults. Each ends in one error line and a non-zero exit, or loses nothing.
"""
from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, bench_args, mmlu_folder, one_error_line, replies_by_key, result_keys, run_cli, start_cli

from taskclock.runtime import bench, mmlu, runfolder, storage, tasks
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model

GUARD_S = 180  # against hangs, not a speed check


def strict_records(path: Path) -> list[dict]:
    """Every line of a log as JSON, failing on any damaged line (jsonl.read would skip it)."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), f"{path} ends in a torn line"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def session_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.jsonl") if ".export" not in p.name)


# ---- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["smollm2", "smollm2-hf"])
def test_a_1_mb_prompt_file_is_a_context_error(tmp_path, model):
    rng = random.Random(1)
    words = ["task", "time", "is", "what", "you", "wait", "for", "tokens", "per", "second"]
    text = " ".join(rng.choice(words) for _ in range(250_000))[:1_000_000]
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(text)
    proc = run_cli("run", "--prompt-file", str(prompt), "--model", model, "--max-tokens", "4", timeout=GUARD_S)
    line = one_error_line(proc)
    assert "tokens but" in line and "context holds" in line and "shorten" in line
    assert "Traceback" not in proc.stdout


@pytest.mark.parametrize("args, words", [
    (["run", "hi", "--max-tokens", "0"], "--max-tokens must be at least 1 and at most 16777216, not 0"),
    (["run", "hi", "--max-tokens", "-5"], "--max-tokens must be at least 1 and at most 16777216, not -5"),
    (["run", "hi", "--ctx", "0"], "--ctx must be at least 1"),
    (["compare", "hi", "--models", "smollm2,smollm2", "--warmup", "-1"], "--warmup must be at least 0 and at"),
    (["bench", "--models", "smollm2", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["bench", "--models", "smollm2", "--max-tokens", "-1"], "--max-tokens must be at least 1"),
    (["bench", "--resume", "/no/such/run"], "is not a bench run folder"),
])
def test_zero_and_negative_numbers_are_one_line(args, words):
    proc = run_cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert words in proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("body, words", [
    ("[sampling\nmax_tokens = 1\n", "TOML syntax error"),
    ("[sampling]\nmax_tokens = 8\ntemprature = 0.5\n", "(line 3): unknown key 'temprature' in [sampling]"),
    ('[models.x]\nbackend = "hf"\nsource = "y"\nn_ctx = "big"\n', "(line 4): [models.x] n_ctx must be an integer"),
])
@pytest.mark.parametrize("command", [["run", "hi"], ["chat"], ["compare", "hi", "--models", "a,b"],
                                     ["bench", "--models", "smollm2"]])
def test_a_bad_config_file_stops_every_command_with_one_line(tmp_path, body, words, command):
    config = tmp_path / "config.toml"
    config.write_text(body)
    line = one_error_line(run_cli(*command, "--config", str(config)))
    assert str(config) in line and words in line


def _bench_on(mmlu_dir: Path | None, out: Path, *extra: str) -> subprocess.CompletedProcess:
    source = ["--mmlu", str(mmlu_dir)] if mmlu_dir else []  # None: the built-in copy
    return run_cli("bench", "--models", "smollm2", "--tasks", "mc", *source, "--limit", "1",
                   "--max-tokens", "2", "--warmup", "0", "--out", str(out), "--no-plots", *extra, timeout=GUARD_S)


def test_empty_mmlu_folder_and_only_bad_rows_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    (empty / "test").mkdir(parents=True)
    assert "holds no *" in one_error_line(_bench_on(empty, tmp_path / "runs"))
    bad = tmp_path / "bad"
    (bad / "test").mkdir(parents=True)
    (bad / "test" / "anatomy_test.csv").write_text("only,three,columns\n\"unclosed,quote\n")
    assert "no valid MMLU rows" in one_error_line(_bench_on(bad, tmp_path / "runs"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no empty run folders


def test_some_bad_mmlu_rows_are_counted_and_the_run_goes_on(tmp_path):
    data = tmp_path / "mmlu" / "test"
    data.mkdir(parents=True)
    good = next(iter(sorted((mmlu_folder(tmp_path / "built-in") / "test").glob("*.csv")))).read_text(encoding="utf-8")
    (data / "mixed_test.csv").write_text("broken row,with,four,columns\n" + good, encoding="utf-8")
    proc = _bench_on(tmp_path / "mmlu", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 malformed MMLU row(s)" in proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert len(result_keys(folder)) == 1


def test_unwritable_runs_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"  # root ignores permission bits; a path under a plain file fails for anyone
    blocker.write_text("")
    line = one_error_line(_bench_on(None, blocker / "runs"))
    assert "cannot write" in line and "a-file" in line and "check the folder" in line


def test_unwritable_sessions_folder_for_compare_warns_in_one_line_and_keeps_the_results(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run_cli("compare", "Say hi.", "--models", "smollm2,gemma3-270m", "--max-tokens", "4", "--json",
                   "--sessions", str(blocker / "sessions"), timeout=GUARD_S)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "compare not logged: cannot write" in warning[0] and "a-file" in warning[0]
    assert [row["model"] for row in json.loads(proc.stdout)["models"]] == ["smollm2", "gemma3-270m"]


# ---- bench faults ----------------------------------------------------------------------------------

class StartedRun:
    """A `taskclock bench` process whose stderr is read on a thread, to know when its run has begun."""

    def __init__(self, args: list[str]) -> None:
        self.proc = start_cli(args)
        self.began = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("run folder:"):
                self.began.set()
        self.began.set()  # ended before starting: let the test see why

    def folder(self) -> Path:
        return Path(next(line for line in self.lines if line.startswith("run folder:")).split()[2])

    def row_count(self) -> int:
        results = self.folder() / runfolder.RESULTS_FILE
        return len(results.read_bytes().splitlines()) if results.exists() else 0

    def interrupt(self, sig: int, new_rows: int, delay_s: float) -> int:
        """Signal the run ``delay_s`` after it has written ``new_rows`` more rows (0: during loading)."""
        assert self.began.wait(GUARD_S)
        target = self.row_count() + new_rows
        while self.row_count() < target and self.proc.poll() is None:
            time.sleep(0.01)
        try:
            self.proc.wait(delay_s)  # it may finish first: then there is nothing left to interrupt
        except subprocess.TimeoutExpired:
            self.proc.send_signal(sig)
        return self.proc.wait(GUARD_S)


@pytest.mark.slow
def test_sigint_and_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    rng = random.Random(7)  # fixed: the same kill points on every run of the test
    limit = 6
    whole = run_cli(*bench_args(tmp_path / "whole", limit), timeout=GUARD_S)
    assert whole.returncode == 0, whole.stderr
    (whole_folder,) = (tmp_path / "whole").iterdir()
    row_s = statistics.median(r["task_time_s"] for r in storage.read(whole_folder / runfolder.RESULTS_FILE))

    run = StartedRun(bench_args(tmp_path / "cut", limit))
    for attempt in range(4):  # while loading, mid-row, just after a row was appended...
        sig = (signal.SIGINT, signal.SIGKILL)[attempt % 2]
        code = run.interrupt(sig, rng.randint(0, 1), rng.uniform(0, row_s))
        output = "".join(run.lines)
        assert "Traceback" not in output
        assert code in ((0, 130) if sig == signal.SIGINT else (0, -signal.SIGKILL)), output
        folder = run.folder()
        kept = replies_by_key(folder) if (folder / runfolder.RESULTS_FILE).exists() else {}  # none before a first row
        assert set(kept) <= set(replies_by_key(whole_folder))  # replies_by_key fails on a duplicate
        run = StartedRun(["bench", "--resume", str(folder), "--no-plots"])
    assert run.proc.wait(GUARD_S) == 0, "".join(run.lines)
    assert replies_by_key(folder) == replies_by_key(whole_folder)  # same keys, none twice; greedy: same replies
    assert all(line.endswith("\n") for line in (folder / runfolder.RESULTS_FILE).read_text().splitlines(True))


@pytest.fixture(scope="module")
def data():
    return mmlu.load(None)


def test_a_model_that_raises_mid_row_marks_that_row_and_the_run_goes_on(tmp_path, data, tiny_llama_dir):
    """transformers raising inside generate() (a device fault, an OOM): one row records the error."""
    failing_row = 2
    state = {"rows": 0, "steps": 0}

    def flaky_loader(spec: ModelSpec):
        model = load_model(spec)
        forward, generate = model.model.forward, model.model.generate

        def counted_generate(*args, **kwargs):
            state["rows"] += 1
            state["steps"] = 0
            return generate(*args, **kwargs)

        def faulty_forward(*args, **kwargs):
            state["steps"] += 1
            if state["rows"] == failing_row and state["steps"] > 1:
                raise RuntimeError("simulated device fault")
            return forward(*args, **kwargs)

        model.model.generate, model.model.forward = counted_generate, faulty_forward
        return model

    spec = ModelSpec("tiny", "hf", str(tiny_llama_dir))
    folder, plan = bench.prepare(models=[spec], task_list=tasks.resolve(["paraphrase"]), data=data, subjects=None,
                                 limit=4, seed=0, batch_size=1, warmup=0, max_tokens=6, sampling=SamplingParams(),
                                 runs_dir=tmp_path)
    outcome = bench.BenchRunner(folder, plan, data.by_id(), loader=flaky_loader).run()
    assert outcome.rows_written == 4 and not outcome.failures and not outcome.interrupted
    rows = list(storage.read(folder / runfolder.RESULTS_FILE))
    assert [r["stop_reason"] == "error" for r in rows] == [False, True, False, False]
    assert "simulated device fault" in rows[1]["error"] and rows[1]["output_tokens"] >= 1
    from taskclock.runtime.summary import load_summary

    (cell,) = load_summary(folder).cells
    assert cell.errors == 1 and cell.done == 4


LLAMA_FAULT = """\
import llama_cpp

_generate = llama_cpp.Llama.generate
_calls = [0]


def generate(self, *args, **kwargs):
    _calls[0] += 1
    for step, token in enumerate(_generate(self, *args, **kwargs)):
        if _calls[0] == 2 and step == 1:
            raise RuntimeError("simulated decode fault")
        yield token


llama_cpp.Llama.generate = generate
"""


def test_bench_cli_row_whose_decode_fails_is_reported_and_the_rest_run(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(LLAMA_FAULT)  # patches llama.cpp in the child only
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = run_cli(*bench_args(tmp_path / "runs", limit=3), env=env, timeout=GUARD_S)
    assert "Traceback" not in proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    rows = list(storage.read(folder / runfolder.RESULTS_FILE))
    assert len(rows) == 3 and [r["stop_reason"] == "error" for r in rows] == [False, True, False]
    assert "simulated decode fault" in rows[1]["error"]
    assert "1 row(s) ended in an error" in proc.stderr


# ---- chat and session-log faults --------------------------------------------------------------------

def _headless_chat(sessions: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "headless_chat.py"), str(sessions), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_during_a_chat_turn_keeps_every_earlier_turn(tmp_path):
    app = _headless_chat(tmp_path, "--turns", "2", "--then-stream")
    seen = []
    for line in app.stdout:
        seen.append(line.strip())
        if line.strip() == "streaming":
            app.send_signal(signal.SIGKILL)
            break
    assert app.wait(GUARD_S) == -signal.SIGKILL, (seen, app.stderr.read())
    assert seen == ["turn 0 done", "turn 1 done", "streaming"]
    (path,) = session_files(tmp_path)
    records = strict_records(path)
    assert [r["prompt"] for r in records] == ["turn 0: reply with one word.", "turn 1: reply with one word."]
    assert all(r["reply"] and r["stop_reason"] in ("eos", "length") for r in records)
    exported = run_cli("export", str(path), "--format", "md")
    assert exported.returncode == 0, exported.stderr
    assert "2 turns." in path.with_name(f"{path.stem}.export.md").read_text()


def test_two_app_processes_share_a_sessions_folder_without_damaged_lines(tmp_path):
    turns, words = 12, 1500  # each record carries the whole conversation: lines grow to ~100 KB
    apps = [_headless_chat(tmp_path, "--tag", tag, "--turns", str(turns), "--scripted", str(words)) for tag in "AB"]
    for app in apps:
        assert app.wait(GUARD_S) == 0, app.stderr.read()
    records = [r for path in session_files(tmp_path) for r in strict_records(path)]
    assert len(records) == 2 * turns
    for tag in "AB":
        mine = [r for r in records if r["prompt"].startswith(f"{tag} ")]
        assert [r["prompt"] for r in mine] == [f"{tag} {i}: reply with one word." for i in range(turns)]
        assert all(len(r["token_offsets_ms"]) == words for r in mine)


def test_two_compare_processes_share_a_sessions_folder(tmp_path):
    args = [sys.executable, "-m", "taskclock", "compare", "Name three colors.", "--models", "smollm2,gemma3-270m",
            "--max-tokens", "12", "--sessions", str(tmp_path), "--json"]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=GUARD_S) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    records = [r for path in session_files(tmp_path) for r in strict_records(path)]
    assert len(records) == 4
    by_run: dict[str, list[str]] = {}
    for record in records:
        by_run.setdefault(record["compare_id"], []).append(record["model"])
    assert sorted(map(sorted, by_run.values())) == [["gemma3-270m", "smollm2"]] * 2


def test_an_append_after_a_torn_line_is_not_lost(tmp_path):
    """A writer killed mid-write can leave a partial last line; the next append must not be glued onto it."""
    path = tmp_path / "log.jsonl"
    storage.append(path, {"turn": 1})
    with open(path, "ab") as handle:
        handle.write(b'{"turn": 2, "reply": "half of a rec')
    storage.append(path, {"turn": 3})
    assert [r["turn"] for r in storage.read(path)] == [1, 3]
    assert path.read_bytes().endswith(b'{"turn":3}\n')
