"""The machine's other work around a run: other processes' CPU share (own work and a local server left out),
recorded in system.json, compare logs and session logs, and "busy machine" said where the figures are shown."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from helpers import run_cli
from llama_server import HOST, free_port

from taskclock.runtime import runfolder, summary, system

SPIN = [sys.executable, "-c", "while True: pass"]


def snapshot(at: float, machine: float, own: float = 0.0, excluded: float = 0.0) -> system.CpuSnapshot:
    return system.CpuSnapshot(at, machine, own, excluded)


def test_other_processes_cpu_is_the_machines_less_this_processs_and_the_excluded():
    # over 2 s the machine spent 5 CPU-seconds: 1 of them ours, 1.5 a local server's, the rest other work
    before, after = snapshot(10.0, 100.0, 3.0, 7.0), snapshot(12.0, 105.0, 4.0, 8.5)
    assert system.others_cores(before, after) == pytest.approx(2.5 / 2)
    assert system.others_cores(after, after) is None
    assert system.others_cores(before, snapshot(12.0, 100.5, 4.0, 8.5)) == 0  # never below 0


def test_busy_means_more_than_a_core_of_other_work_before_or_during():
    quiet = {"cores": 2, "before": {"others_cores": 0.2, "load_avg_1m": 0.5}, "during": {"others_cores": 0.9}}
    loaded = {"cores": 2, "before": {"others_cores": 0.2, "load_avg_1m": 3.4}, "during": {"others_cores": 1.6}}
    assert not system.busy(quiet) and system.busy(loaded) and not system.busy(None)
    assert system.busy_note(quiet) == ""
    assert system.busy_note(loaded).startswith("busy machine: other processes took 1.6 cores of 2 around this run")
    assert "(quiet machine)" in system.load_line(quiet) and "during: load average" in system.load_line(loaded)
    assert system.run_busy_note({"load": [quiet, loaded]}) == system.busy_note(loaded)


def test_a_spinning_process_is_other_work_unless_it_is_the_server_measured():
    """Two watches over the same second, one leaving the spinner out: they differ by the spinner's CPU."""
    spinner = subprocess.Popen(SPIN)
    try:
        time.sleep(0.2)
        everything, without = system.LoadWatch(), system.LoadWatch([spinner.pid])
        everything.started(), without.started()
        time.sleep(1.0)
        everything.finished(), without.finished()
    finally:
        spinner.kill()
        spinner.wait()
    seen, left_out = everything.record()["during"]["others_cores"], without.record()["during"]["others_cores"]
    assert seen - left_out >= 0.3  # a spinner gets at least that on a shared 2-core machine
    assert without.record()["excluded_pids"] == [spinner.pid]


def test_the_process_serving_a_loopback_url_is_found():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", HOST, str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if system.local_server_pids([f"http://{HOST}:{port}/v1"]):
                break
            time.sleep(0.05)
        assert system.local_server_pids([f"http://{HOST}:{port}/v1", "smollm2"]) == [server.pid]
        assert system.local_server_pids(["http://10.0.0.5:8000/v1"]) == []  # another machine's work is not here
    finally:
        server.terminate()
        server.wait()


def test_a_bench_run_records_its_load_and_says_when_the_machine_was_busy(tmp_path):
    result = run_cli("bench", "--models", "smollm2", "--tasks", "mc", "--limit", "1", "--max-tokens", "2",
                     "--warmup", "0", "--out", str(tmp_path), "--no-plots")
    assert result.returncode == 0, result.stderr
    (folder,) = tmp_path.iterdir()
    (load,) = json.loads((folder / runfolder.SYSTEM_FILE).read_text())["load"]
    assert load["before"]["window_s"] >= system.MIN_BEFORE_S and load["during"]["others_cores"] is not None
    assert ("busy machine" in result.stderr) == load["busy"]
    markdown = (folder / "summary.md").read_text()
    assert "- machine load: before: load average" in markdown
    # the same run on a busy machine: said at the top of summary.md and on the console's end
    runfolder.add_load(folder, {"cores": 2, "before": {"others_cores": 1.7, "load_avg_1m": 3.9, "window_s": 0.3},
                            "during": {"others_cores": 1.2, "load_avg_1m": 3.5, "window_s": 2.0}, "busy": True})
    exported = summary.export(folder)
    note = system.run_busy_note(runfolder.read_system(folder))  # the run's own session, if it was busy; else this one
    assert note.startswith("busy machine: other processes took")
    assert (folder / "summary.md").read_text().startswith(f"# taskclock bench run {exported.plan.run_id}\n\n"
                                                          f"**Note: {note}.**")


def test_compare_and_run_keep_the_load_with_their_turns(tmp_path):
    compared = run_cli("compare", "Hi", "--models", "smollm2,smollm2", "--max-tokens", "2", "--json",
                       "--sessions", str(tmp_path / "compare"))
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["load"]["during"]["others_cores"] is not None
    first, second = (json.loads(line) for line in next((tmp_path / "compare").glob("*.jsonl")).read_text()
                     .splitlines())
    assert "before" in first["load"] and "load" not in second  # once per compare, with its first turn
    ran = run_cli("run", "Hi", "--max-tokens", "2", "--json", "--sessions", str(tmp_path / "run"))
    assert ran.returncode == 0, ran.stderr
    (record,) = (json.loads(line) for line in next((tmp_path / "run").glob("*.jsonl")).read_text().splitlines())
    assert record["load"]["before"]["window_s"] > 0 and json.loads(ran.stdout)["load"] == record["load"]
