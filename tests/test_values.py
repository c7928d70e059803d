"""Issue 11, item 11, through the real `taskclock` command: every sampling and model number is range-checked
in one place (runtime/values.py), for the config file and the command line alike, and a wrong value or type
is one line naming the key (and, in a config file, the file and line)."""
from __future__ import annotations

import pytest
from helpers import one_error_line, run_cli
from llama_server import reply_script, running_scripted_server

HTTP_MODEL = '[models.m]\nbackend = "http"\nsource = "http://127.0.0.1:9/v1"\n'


@pytest.mark.parametrize("body, words", [
    ("models = 5\n", "(line 1): models must be a table"),
    ('tasks = "x"\n', "(line 1): tasks must be a table"),
    (HTTP_MODEL + "timeout_s = -1\n", "(line 4): [models.m] timeout_s must be more than 0 and at most 86400, not -1.0"),
    (HTTP_MODEL + "timeout_s = nan\n", "(line 4): [models.m] timeout_s must be a finite number, not nan"),
    (HTTP_MODEL + "n_ctx = 0\n", "(line 4): [models.m] n_ctx must be at least 1 and at most 16777216, not 0"),
    (HTTP_MODEL + 'dtype = "float8"\n', "(line 4): [models.m] dtype must be one of auto, float16"),
    ("[sampling]\ntemperature = nan\n", "(line 2): [sampling] temperature must be a finite number, not nan"),
    ("[sampling]\ntemperature = inf\n", "(line 2): [sampling] temperature must be a finite number, not inf"),
    ("[sampling]\ntemperature = 2.5\n", "(line 2): [sampling] temperature must be at least 0 and at most 2"),
    ("[sampling]\ntemperature = -0.1\n", "[sampling] temperature must be at least 0 and at most 2, not -0.1"),
    ("[sampling]\nmax_tokens = -5\n", "(line 2): [sampling] max_tokens must be at least 1 and at most 16777216"),
    ("[sampling]\ntop_p = 7.5\n", "(line 2): [sampling] top_p must be more than 0 and at most 1, not 7.5"),
    ("[sampling]\ntop_p = 0\n", "[sampling] top_p must be more than 0 and at most 1, not 0.0"),
    ("[sampling]\nseed = -1\n", "(line 2): [sampling] seed must be at least 0 and at most 4294967295, not -1"),
    ("[sampling]\nseed = 4294967296\n", "[sampling] seed must be at least 0 and at most 4294967295"),
    ('[tasks.t]\ntemplate = "{question}"\nmax_tokens = 0\n', "(line 3): [tasks.t] max_tokens must be at least 1"),
])
def test_a_config_value_out_of_range_or_of_the_wrong_type_is_one_line(tmp_path, body, words):
    config = tmp_path / "config.toml"
    config.write_text(body)
    line = one_error_line(run_cli("run", "hi", "--config", str(config)))
    assert str(config) in line and words in line


@pytest.mark.parametrize("option, value, words", [
    ("--temperature", "nan", "--temperature must be a finite number, not nan"),
    ("--temperature", "inf", "--temperature must be a finite number, not inf"),
    ("--temperature", "2.5", "--temperature must be at least 0 and at most 2, not 2.5"),
    ("--top-p", "0", "--top-p must be more than 0 and at most 1, not 0.0"),
    ("--top-p", "7.5", "--top-p must be more than 0 and at most 1, not 7.5"),
    ("--seed", "-1", "--seed must be at least 0 and at most 4294967295, not -1"),
    ("--max-tokens", "-5", "--max-tokens must be at least 1 and at most 16777216, not -5"),
])
def test_a_cli_sampling_value_out_of_range_on_an_http_model_is_one_line(option, value, words):
    with running_scripted_server(reply_script("A")) as server:
        proc = run_cli("run", "hi", "--model", server.url, option, value)
        assert server.requests == []  # refused before anything was sent
    assert words in one_error_line(proc)


def test_a_huge_seed_on_a_transformers_model_is_one_line():
    line = one_error_line(run_cli("run", "hi", "--model", "smollm2-hf", "--seed", "99999999999999999999"))
    assert "--seed must be at least 0 and at most 4294967295, not 99999999999999999999" in line


def test_a_huge_seed_for_bench_is_one_line(tmp_path):
    line = one_error_line(run_cli("bench", "--models", "smollm2", "--seed", "99999999999999999999",
                                  "--out", str(tmp_path)))
    assert "--seed must be at least 0 and at most 4294967295" in line
    assert not any(tmp_path.iterdir())

