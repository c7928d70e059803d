"""Issue 11, items 2, 4 and 8, through the real `taskclock` command: outside text (model output, server error
bodies, file names, config text, MMLU rows) never reaches the terminal as escape codes, never runs as Rich
markup, and never becomes a spreadsheet formula in a CSV export."""
from __future__ import annotations

import csv
import http.server
import json
import threading

import pytest
from helpers import bench_on, compare_log, mmlu_folder, one_error_line, run_cli
from llama_server import HOST, ScriptedHandler, free_port, reply_script, running_scripted_server

ESCAPES = {
    "osc0-window-title": "\x1b]0;pwned\x07",
    "clear-screen": "\x1b[2J\x1b[H",
    "osc52-clipboard": "\x1b]52;c;ZXZpbCBjb21tYW5k\x07",
    "osc8-link": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "sgr-colour": "\x1b[31;5mred\x1b[0m",
    "c1-csi": "\x9b2J",
}
MARKUP = "[/x] [bold]b[/bold] [link=http://evil.example/]l[/link] [/]"


def assert_no_terminal_control(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(text)


# ---- item 2: escape codes in model output and server errors -------------------------------------------

@pytest.mark.parametrize("name", ESCAPES)
def test_run_shows_escape_codes_in_the_reply_as_visible_text(name):
    with running_scripted_server(reply_script("before ", ESCAPES[name], " after")) as server:
        proc = run_cli("run", "hi", "--model", server.url, "--max-tokens", "16")
    assert proc.returncode == 0, proc.stderr
    assert_no_terminal_control(proc.stdout + proc.stderr)
    assert proc.stdout.startswith("before ") and "after" in proc.stdout


@pytest.mark.parametrize("name", ESCAPES)
def test_compare_shows_escape_codes_in_the_replies_as_visible_text(name, tmp_path):
    with running_scripted_server(reply_script(ESCAPES[name], " done")) as server:
        proc = run_cli("compare", "hi", "--models", f"{server.url},{server.url}", "--max-tokens", "16",
                       "--sessions", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert_no_terminal_control(proc.stdout + proc.stderr)
    assert proc.stdout.count("done") >= 2


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_server_error_body_with_escape_codes_and_markup_is_one_safe_line(command, tmp_path):
    body = {"error": {"message": f"boom {ESCAPES['osc0-window-title']}{ESCAPES['clear-screen']} {MARKUP}"}}
    with running_scripted_server((500, body)) as server:
        args = ["--model", server.url] if command == "run" else ["--models", f"{server.url},{server.url}",
                                                                 "--sessions", str(tmp_path)]
        proc = run_cli(command, "hi", *args, "--max-tokens", "8")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert_no_terminal_control(proc.stdout + proc.stderr)
    assert "HTTP 500: boom ␛]0;pwned␇" in proc.stderr and "[/x]" in proc.stderr


def test_error_lines_show_file_names_with_escape_codes_as_visible_text(tmp_path):
    proc = run_cli("run", "--prompt-file", str(tmp_path / "no\x1b]0;pwned\x07such.txt"))
    line = one_error_line(proc)
    assert_no_terminal_control(proc.stderr)
    assert "no␛]0;pwned␇such.txt" in line


def test_models_shows_config_descriptions_as_plain_text(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[models.evil]\nbackend = "http"\nsource = "http://127.0.0.1:9/v1"\n'
                      f'description = {json.dumps("d " + ESCAPES["osc8-link"] + " " + MARKUP)}\n')
    proc = run_cli("models", "--config", str(config), env={"COLUMNS": "300"})
    assert proc.returncode == 0, proc.stderr
    assert_no_terminal_control(proc.stdout)
    assert "[link=http://evil.example/]l[/link]" in proc.stdout and "[/x]" in proc.stdout


def test_export_prints_a_file_name_with_escape_codes_as_visible_text(tmp_path):
    log = compare_log(tmp_path, "hi", "reply")
    proc = run_cli("export", str(log), "-o", str(tmp_path / "out\x1b[2J.csv"))
    assert proc.returncode == 0, proc.stderr
    assert_no_terminal_control(proc.stdout)
    assert "out␛[2J.csv" in proc.stdout


# ---- item 4: CSV formula injection ---------------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
            "\t=1", "\r=1"]


@pytest.mark.parametrize("formula", FORMULAS)
def test_session_csv_export_neutralises_formulas(formula, tmp_path):
    log = compare_log(tmp_path, formula, formula)
    out = tmp_path / "out.csv"
    proc = run_cli("export", str(log), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert [row["prompt"] for row in rows] == ["'" + formula] * 2
    assert [row["reply"] for row in rows] == ["'" + formula] * 2
    assert rows[0]["model"].startswith("http://")  # ordinary text is left alone


def test_bench_results_csv_neutralises_formulas(tmp_path):
    formula = "=cmd|' /C calc'!A0"
    with running_scripted_server(reply_script(formula)) as server:
        proc = bench_on(server.url, tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    (row,) = csv.DictReader((folder / "results.csv").open(newline="", encoding="utf-8"))
    assert row["reply"] == "'" + formula


# ---- item 8: Rich markup in data never raises MarkupError ----------------------------------------------

class ModelsErrorHandler(ScriptedHandler):
    """A server whose model list answers HTTP 500 with markup in the body."""

    def do_GET(self) -> None:
        self._send(500, json.dumps({"error": {"message": MARKUP}}).encode())


def test_bench_survives_markup_in_an_http_error_and_writes_its_summary(tmp_path):
    server = http.server.ThreadingHTTPServer((HOST, 0), ModelsErrorHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = bench_on(f"http://{HOST}:{server.server_address[1]}/v1", tmp_path / "runs")
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "failed:" in proc.stderr and "HTTP 500: [/x]" in proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / "summary.md").is_file()


def test_bench_survives_markup_in_the_out_folder(tmp_path):
    with running_scripted_server(reply_script("A")) as server:
        proc = bench_on(server.url, tmp_path / "[/x]")
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "[/x]").iterdir()
    assert (folder / "summary.md").is_file() and f"results: {folder}" in proc.stderr


def test_bench_survives_markup_in_a_progress_bar_label(tmp_path):
    config = tmp_path / "config.toml"
    with running_scripted_server(reply_script("A")) as server:
        config.write_text(f'[models."m[/x]"]\nbackend = "http"\nsource = "{server.url}"\n')
        proc = bench_on(server.url, tmp_path / "runs", config=config, models="m[/x]")
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert "m[/x]" in (folder / "summary.md").read_text()


def test_bench_survives_markup_in_a_failure_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[models."dead[/x]"]\nbackend = "http"\nsource = "http://127.0.0.1:{free_port()}/v1"\n')
    proc = bench_on("", tmp_path / "runs", config=config, models="dead[/x]")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "model dead[/x] failed: cannot reach" in proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / "summary.md").is_file()


def test_bench_survives_markup_in_an_mmlu_answer(tmp_path):
    data = tmp_path / "mmlu" / "test"
    data.mkdir(parents=True)
    good = next(iter(sorted((mmlu_folder(tmp_path / "built-in") / "test").glob("*.csv")))).read_text(encoding="utf-8")
    (data / "mixed_test.csv").write_text("q,a,b,c,d,[/x]\n" + good, encoding="utf-8")
    with running_scripted_server(reply_script("A")) as server:
        proc = bench_on(server.url, tmp_path / "runs", mmlu=tmp_path / "mmlu")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 malformed MMLU row(s)" in proc.stderr and "[/x]" in proc.stderr
