"""`taskclock load` against llama.cpp's own llama-server with 4 parallel slots, on loopback: two models (SmolLM2,
a chat model, and Gemma 3 270M, a base model through /completions, each on a server of its own) at three rates
with the mc and explain task sets. Ctrl-C after the first rate keeps it; --resume runs exactly the rest; the
summary has both models' goodput and latency curves and a verdict per task set. Small on purpose: a 2-core
machine runs both servers and the client."""
from __future__ import annotations

import json
import signal

import pytest
from helpers import first_closed_rate, records_of, run_cli, start_cli
from llama_server import NativeLlamaServer, native_server_or_skip, smollm2_gguf

from taskclock.runtime import runfolder, storage

RATES = (1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def servers():
    from taskclock.runtime.models import local_file, resolve

    smol = native_server_or_skip(smollm2_gguf(), slots=4)
    try:
        gemma = NativeLlamaServer(local_file(resolve("gemma3-270m")), slots=4)
    except BaseException:
        smol.stop()
        raise
    yield smol, gemma
    smol.stop()
    gemma.stop()


def test_two_models_at_three_rates_resume_after_ctrl_c_and_the_verdict(tmp_path, servers):
    smol, gemma = servers
    config = tmp_path / "config.toml"
    config.write_text(f'[models.smollm2-server]\nbackend = "http"\nsource = "{smol.url}"\n\n'
                      f'[models.gemma-server]\nbackend = "http"\nsource = "{gemma.url}"\nchat = false\n')
    out = tmp_path / "runs"
    proc = start_cli(["load", "--models", "smollm2-server,gemma-server", "--config", str(config), "--tasks",
                      "mc,explain", "--rates", ",".join(f"{r:g}" for r in RATES), "--requests", "5", "--warmup", "1",
                      "--max-tokens", "24", "--slo", "task=8", "--limit", "5", "--out", str(out), "--no-plots"])
    folder = first_closed_rate(out, proc, timeout_s=300)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    kept = records_of(folder, "segment")
    assert kept and len(kept) < 12
    done = run_cli("load", "--resume", str(folder), "--config", str(config), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    closing = records_of(folder, "segment")
    assert closing[:len(kept)] == kept and len(closing) == 12  # 2 models × 2 task sets × 3 rates, none twice
    summary = json.loads((folder / "summary.json").read_text())
    cells = summary["cells"]
    assert {(c["model"], c["task"], c["rate"]) for c in cells} == {
        (m, t, r) for m in ("smollm2-server", "gemma-server") for t in ("mc", "explain") for r in RATES}
    for c in cells:
        assert c["finished"] == 5 and c["errors"] == 0 and c["goodput"] is not None
        assert c["latency"]["task_p50_s"] > 0 and c["decode_tps_p50"] > 0
    assert [g["task"] for g in summary["rankings"]] == ["mc", "explain"]
    for group in summary["rankings"]:
        assert group["verdict"].startswith(f"{group['task']}: ") and " finishes later" in group["verdict"]
        assert {r["model"] for r in group["ranks"]} == {"smollm2-server", "gemma-server"}
    plots = (folder / "plots.txt").read_text()
    assert "goodput vs rate" in plots and "task time from arrival" in plots
    assert "smollm2-server · explain" in plots and "gemma-server · mc" in plots
    assert "verdict: mc: " in done.stdout and "verdict: explain: " in done.stdout
    # llama-server's own timings are kept beside the client's: its prefill on every row
    rows = [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "load"]
    assert len(rows) == 60 and all(r["backend_prefill_s"] is not None for r in rows)
    assert all(r["server_timings"]["predicted_n"] >= 1 for r in rows)  # the server's own count, beside ours
