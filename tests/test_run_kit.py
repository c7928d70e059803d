"""The run kit's one failure policy (runtime/runner.py), the same in every runner: a model that fails to load, or
raises while it runs, gets one ``failure`` record, the rows it finished stay, the next model runs, and the
console exits 1. Each runner is driven against a real scripted server on loopback (two names for one server, so
the model after the broken one has something to answer it)."""
from __future__ import annotations

import concurrent.futures
import io
import itertools
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import run_cli
from llama_server import reply_script, running_scripted_server
from rich.console import Console

from taskclock.runtime import arrivals, bench, load, mmlu, runfolder, sweep, tasks
from taskclock.runtime.backend import LoadedModel, ModelSpec, SamplingParams, load_model
from taskclock.runtime.models import resolve
from taskclock.runtime.slo import Slo
from taskclock.tui.commands.common import finish_run

CRASH = "engine died: an illegal memory access was encountered"


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / runfolder.RESULTS_FILE).read_text().splitlines()]


def crashing_on_second_turn(spec: ModelSpec) -> LoadedModel:
    """The real model, except that "crashes" raises out of its second turn as an engine that dies mid-run would
    (every backend's own failures end a turn as an error row; this is what gets past them)."""
    model = load_model(spec)
    if spec.name == "crashes":
        stream, stream_async, turns = model.stream, model.stream_async, itertools.count(1)

        def dies_on_the_second(messages, params, cancel=None):
            if next(turns) == 2:
                raise RuntimeError(CRASH)
            return stream(messages, params, cancel)

        async def dies_on_the_second_in_a_loop(connections, messages, params):  # taskclock load's turns
            if next(turns) == 2:
                raise RuntimeError(CRASH)
            return await stream_async(connections, messages, params)

        model.stream = dies_on_the_second  # type: ignore[method-assign]
        model.stream_async = dies_on_the_second_in_a_loop  # type: ignore[method-assign]
    return model


def prepare_bench(models: list[ModelSpec], runs: Path):
    data = mmlu.load_embedded()
    folder, plan = bench.prepare(models=models, task_list=tasks.resolve(["mc"]), data=data, subjects=None, limit=3,
                                 seed=0, batch_size=1, warmup=0, max_tokens=4, sampling=SamplingParams(),
                                 runs_dir=runs)
    return lambda **options: bench.BenchRunner(folder, plan, data.by_id(), **options), folder, plan.total_rows()


def prepare_sweep(models: list[ModelSpec], runs: Path):
    folder, plan = sweep.prepare(models=models, input_tokens=[48, 64], output_tokens=2, repeats=1, warmup=0,
                                 runs_dir=runs)
    return lambda **options: sweep.SweepRunner(folder, plan, **options), folder, plan.total_rows()


def prepare_load(models: list[ModelSpec], runs: Path):
    """Two rates of one request each: a rate's rows are kept when it ends, so the crash on the second request
    leaves the first rate's row."""
    data = mmlu.load_embedded()
    folder, plan = load.prepare(models=models, rates=[5.0, 10.0], arrival=arrivals.Arrival("constant"), seed=0,
                                requests=1, duration_s=0.0, warmup=0, max_in_flight=0, slo=Slo(), attainment=0.9,
                                sampling=SamplingParams(), max_tokens=4, runs_dir=runs,
                                task_list=tasks.resolve(["mc"]), data=data, limit=1)
    return lambda **options: load.LoadRunner(folder, plan, data.by_id(), **options), folder, 4


RUNNERS = {"bench": prepare_bench, "sweep": prepare_sweep, "load": prepare_load}


def exit_status(command: str, folder: Path, failures: dict[str, str], expected: int) -> int:
    """What the console ends a run with (the bench, sweep and load commands all end with finish_run)."""
    rows = [r for r in records(folder) if r["kind"] in runfolder.ROW_KINDS]
    return finish_run(Console(file=io.StringIO()), command, str(folder), failures, rows, expected, False, "", "")


@pytest.mark.parametrize("command", RUNNERS)
def test_a_model_that_crashes_mid_run_is_recorded_the_same_by_every_runner(tmp_path, command):
    with running_scripted_server(reply_script("A")) as server:
        served = resolve(f"{server.url}#scripted")
        models = [replace(served, name="crashes"), replace(served, name="steady")]
        runner, folder, expected = RUNNERS[command](models, tmp_path)
        outcome = runner(loader=crashing_on_second_turn).run()
    written = records(folder)
    failures = [r for r in written if r["kind"] == "failure"]
    assert failures == [{"kind": "failure", "model": "crashes", "error": f"RuntimeError: {CRASH}"}]
    assert outcome.failures == {"crashes": f"RuntimeError: {CRASH}"} and not outcome.interrupted
    by_model = {name: [r for r in written if r["kind"] in runfolder.ROW_KINDS and r["model"] == name]
                for name in ("crashes", "steady")}
    assert len(by_model["crashes"]) == 1  # the turn before the crash is kept
    assert len(by_model["steady"]) == expected // 2  # the next model ran all its rows
    assert exit_status(command, folder, outcome.failures, expected) == 1


@pytest.mark.parametrize("command", RUNNERS)
def test_a_model_that_cannot_load_is_recorded_the_same_by_every_command(tmp_path, command):
    args = {"bench": ["--tasks", "mc", "--limit", "2", "--max-tokens", "4"],
            "sweep": ["--input-tokens", "48", "--output-tokens", "2"],
            "load": ["--rates", "5", "--requests", "1", "--max-tokens", "4"]}[command]
    with running_scripted_server(reply_script("A")) as server:
        done = run_cli(command, "--models", f"http://127.0.0.1:9/v1#down,{server.url}#scripted", *args,
                       "--warmup", "0", "--out", str(tmp_path), "--no-plots")
    assert done.returncode == 1, done.stderr
    (folder,) = tmp_path.iterdir()
    written = records(folder)
    (failure,) = [r for r in written if r["kind"] == "failure"]
    assert failure["model"] == "http://127.0.0.1:9/v1#down" and failure["error"].startswith(
        "cannot reach http://127.0.0.1:9/v1")
    assert any(r["kind"] in runfolder.ROW_KINDS and r["model"].endswith("#scripted") for r in written)
    assert f"model http://127.0.0.1:9/v1#down failed: {failure['error']}" in " ".join(done.stderr.split())


@pytest.mark.parametrize("command", RUNNERS)
def test_ctrl_c_while_a_model_loads_stops_every_runner_at_once_and_the_late_model_is_closed(tmp_path, command):
    """No backend can stop a load midway, so the kit stops waiting for it: the run ends interrupted, with no
    failure and no row, and the model that finishes loading afterwards is closed, not left open."""
    started, release, closed = threading.Event(), threading.Event(), []

    def loads_once_released(spec: ModelSpec) -> LoadedModel:
        started.set()
        release.wait(30)
        model = load_model(spec)
        close = model.close
        model.close = lambda: (closed.append(spec.name), close())  # type: ignore[method-assign]
        return model

    with running_scripted_server(reply_script("A")) as server:
        runner, folder, _ = RUNNERS[command]([resolve(f"{server.url}#scripted")], tmp_path)
        cancel = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(runner(loader=loads_once_released, cancel=cancel).run)
            assert started.wait(30)
            cancel.set()
            outcome = running.result(timeout=30)  # while the load still waits to be released
            assert outcome.interrupted and not outcome.failures and not closed
            release.set()
            deadline = time.monotonic() + 30
            while not closed and time.monotonic() < deadline:
                time.sleep(0.01)
        assert closed == [f"{server.url}#scripted"] and not server.requests
    written = records(folder) if (folder / runfolder.RESULTS_FILE).exists() else []
    assert not [r for r in written if r["kind"] in runfolder.ROW_KINDS or r["kind"] == "failure"]
