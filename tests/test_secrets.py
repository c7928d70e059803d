"""Issue 11, item 3, through the real `taskclock` command: the password of a URL (http://user:pass@host/v1)
and an API key are never shown or stored: not in error lines, --json, session log names or contents,
run.toml, results.* or summary.*."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import bench_on, one_error_line, run_cli
from llama_server import free_port, reply_script, running_scripted_server

PASSWORD = "hunter2pw"
API_KEY = "sk-test-0123456789abcdef"


def with_password(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@")


def every_file_text(folder: Path) -> str:
    return "".join(p.name + p.read_text(encoding="utf-8", errors="replace")
                   for p in sorted(folder.rglob("*")) if p.is_file())


def test_an_error_line_redacts_the_password_of_the_url():
    url = with_password(f"http://127.0.0.1:{free_port()}/v1")
    line = one_error_line(run_cli("run", "hi", "--model", url))
    assert PASSWORD not in line and "alice:***@127.0.0.1" in line


def test_a_server_error_mid_turn_redacts_the_password():
    with running_scripted_server((500, {"error": "nope"})) as server:
        proc = run_cli("run", "hi", "--model", with_password(server.url), "--max-tokens", "8")
    assert proc.returncode == 1 and PASSWORD not in proc.stderr + proc.stdout
    assert "alice:***@" in proc.stderr


def test_run_json_redacts_the_password():
    with running_scripted_server(reply_script("Hello.")) as server:
        proc = run_cli("run", "hi", "--model", with_password(server.url), "--max-tokens", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["model"] == with_password(server.url).replace(PASSWORD, "***")


def test_compare_logs_keep_the_password_out_of_names_and_contents(tmp_path):
    with running_scripted_server(reply_script("Hello.")) as server:
        url = with_password(server.url)
        proc = run_cli("compare", "hi", "--models", f"{url},{url}", "--max-tokens", "8", "--json",
                       "--sessions", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    assert list(tmp_path.glob("*.jsonl")) and PASSWORD not in every_file_text(tmp_path)


def test_bench_files_keep_the_password_out(tmp_path):
    with running_scripted_server(reply_script("A")) as server:
        proc = bench_on(with_password(server.url), tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert {"run.toml", "results.jsonl", "results.csv", "summary.md", "summary.json"} <= {
        p.name for p in folder.iterdir()}
    assert PASSWORD not in every_file_text(folder) + proc.stdout + proc.stderr
    assert "alice:***@" in (folder / "run.toml").read_text()


def test_bench_failure_of_a_server_keeps_the_password_out(tmp_path):
    proc = bench_on(with_password(f"http://127.0.0.1:{free_port()}/v1"), tmp_path / "runs")
    assert proc.returncode == 1 and "cannot reach" in proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert PASSWORD not in every_file_text(folder) + proc.stdout + proc.stderr


def _keyed_config(folder: Path, url: str) -> Path:
    config = folder / "config.toml"
    config.write_text(f'[models.keyed]\nbackend = "http"\nsource = "{url}"\napi_key_env = "TASKCLOCK_TEST_KEY"\n')
    return config


def test_an_api_key_with_a_line_break_is_refused_without_echoing_it(tmp_path):
    key = f"{API_KEY}\r\nX-Injected: 1"
    with running_scripted_server(reply_script("A")) as server:
        config = _keyed_config(tmp_path, server.url)
        proc = run_cli("run", "hi", "--model", "keyed", "--config", str(config), env={"TASKCLOCK_TEST_KEY": key})
    line = one_error_line(proc)
    assert "TASKCLOCK_TEST_KEY" in line and "cannot carry" in line
    assert API_KEY not in proc.stderr + proc.stdout


def test_an_api_key_with_a_line_break_never_reaches_bench_results(tmp_path):
    key = f"{API_KEY}\r\nX-Injected: 1"
    with running_scripted_server(reply_script("A")) as server:
        config = _keyed_config(tmp_path, server.url)
        proc = run_cli("bench", "--models", "keyed", "--config", str(config), "--tasks", "mc",
                       "--limit", "1", "--max-tokens", "4", "--warmup", "0",
                       "--out", str(tmp_path / "runs"), "--no-plots", env={"TASKCLOCK_TEST_KEY": key})
    assert proc.returncode == 1 and "cannot carry" in proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert API_KEY not in every_file_text(folder) + proc.stdout + proc.stderr


def test_an_api_key_the_server_echoes_back_is_redacted(tmp_path):
    with running_scripted_server((401, {"error": f"bad key Bearer {API_KEY}"})) as server:
        config = _keyed_config(tmp_path, server.url)
        proc = run_cli("run", "hi", "--model", "keyed", "--config", str(config), "--max-tokens", "4",
                       env={"TASKCLOCK_TEST_KEY": API_KEY})
    assert proc.returncode == 1, proc.stderr
    assert API_KEY not in proc.stderr + proc.stdout and "Bearer ***" in proc.stderr


def test_a_non_ascii_api_key_is_one_line(tmp_path):
    with running_scripted_server(reply_script("A")) as server:
        config = _keyed_config(tmp_path, server.url)
        proc = run_cli("run", "hi", "--model", "keyed", "--config", str(config),
                       env={"TASKCLOCK_TEST_KEY": "clé-secrète-123"})
    line = one_error_line(proc)
    assert "TASKCLOCK_TEST_KEY" in line and "non-ASCII" in line and "secrète" not in proc.stderr
