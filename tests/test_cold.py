"""Cold and warm on the real backends: a model's first turn since its load is cold, a warm-up turn (the one
mechanism bench, compare and the Compare tab share) makes the next one warm, and the logs say which."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli, template_opening

from taskclock.runtime import sessions
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.compare import run_compare
from taskclock.runtime.models import resolve
from taskclock.runtime.turn import WARM_UP_TOKENS, run_turn, warm_up

ASK = [{"role": "user", "content": "Name three colours."}]
SKY = [{"role": "user", "content": "Explain in two sentences why the sky is blue and why sunsets look red, for a "
                                   "curious ten year old."}]
SHORT = SamplingParams(max_tokens=8)


@pytest.fixture(params=["llamacpp", "hf"])
def fresh_models(request, tiny_llama_dir):
    """Two models just loaded (never the session-wide fixtures, which earlier tests have warmed)."""
    spec = resolve("smollm2") if request.param == "llamacpp" else ModelSpec("tiny", "hf", str(tiny_llama_dir))
    models = [load_model(spec), load_model(spec)]
    yield models
    for model in models:
        model.close()


def test_first_turn_after_a_load_is_cold_and_the_next_is_warm(fresh_models, tmp_path):
    model = fresh_models[0]
    first, second = run_turn(model, ASK, SHORT), run_turn(model, ASK, SHORT)
    assert (first.cold, second.cold) == (True, False)
    log = sessions.SessionLog(tmp_path, model.spec.name)
    for result in (first, second):
        log.append(sessions.turn_record(result))
    assert [t["cold"] for t in sessions.read_session(log.path)] == [True, False]


def test_compare_warms_up_by_default_and_measures_cold_without(fresh_models):
    cold = run_compare(fresh_models, ASK, SHORT, warmup=0)
    assert [r.cold for r in cold.results] == [True, True] and [row["cold"] for row in cold.rows()] == [True, True]
    assert all(record["cold"] for record in cold.session_records())
    warm = run_compare(fresh_models, ASK, SHORT, warmup=0)  # the models have answered once now
    assert [r.cold for r in warm.results] == [False, False]


def test_a_warm_up_turn_makes_the_first_timed_turn_warm_and_costs_a_few_tokens(fresh_models):
    model = fresh_models[1]
    (untimed,) = warm_up(model, SamplingParams(max_tokens=256))
    assert 0 < untimed.metrics.output_tokens <= WARM_UP_TOKENS  # not the timed turns' 256
    assert run_turn(model, ASK, SHORT).cold is False


def test_a_compare_warm_up_leaves_the_timed_prompt_to_prefill(smollm2):
    """The warm-up asks a prompt of its own: the timed turn still evaluates its whole prompt past the chat template's
    opening (a warm-up on the timed prompt left llama.cpp's cache serving all of it but one token)."""
    (result,) = run_compare([smollm2], SKY, SHORT, warmup=1).results
    assert result.cold is False
    evaluated = result.done.extra["llama_perf"]["prompt_tokens"]
    assert evaluated >= result.done.input_tokens - template_opening(smollm2) > 10


def test_cli_compare_warms_up_unless_told_not_to(tmp_path):
    common = ("compare", "Name three colours.", "--models", "smollm2,smollm2", "--max-tokens", "8", "--json",
              "--sessions", str(tmp_path))
    warm = run_cli(*common)
    cold = run_cli(*common, "--no-warmup")
    assert warm.returncode == 0 and cold.returncode == 0, warm.stderr + cold.stderr
    assert [row["cold"] for row in json.loads(warm.stdout)["models"]] == [False, False]
    assert [row["cold"] for row in json.loads(cold.stdout)["models"]] == [True, True]
    bad = run_cli(*common, "--no-warmup", "--warmup", "2")
    assert bad.returncode == 2 and "not allowed with argument" in bad.stderr
