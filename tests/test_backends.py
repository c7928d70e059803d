"""The real backends produce the event stream the rest of taskclock relies on."""
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from taskclock.runtime import metrics
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.events import Done, Submitted, Token
from taskclock.runtime.turn import run_turn

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
COUNT = [{"role": "user", "content": "Count from 1 to 40, one number per line."}]


def check_stream_shape(events):
    assert isinstance(events[0], Submitted)
    assert isinstance(events[-1], Done)
    tokens = [e for e in events if isinstance(e, Token) and e.count]
    times = [e.t_ns for e in events]
    assert times == sorted(times), "timestamps must follow production order"
    return tokens


@pytest.mark.parametrize("fixture", ["smollm2", "smollm2_hf"])
def test_stream_is_submitted_tokens_done_with_exact_counts(fixture, request):
    model = request.getfixturevalue(fixture)
    result = run_turn(model, QUESTION, SamplingParams(max_tokens=40))
    tokens = check_stream_shape(result.events)
    assert all(t.token_id is not None for t in tokens)
    assert result.done.output_tokens == len(tokens)
    assert result.done.input_tokens > 0
    assert "Paris" in result.text
    assert result.done.stop_reason == "eos"


def test_transformers_and_llamacpp_agree_word_for_word(smollm2, smollm2_hf):
    """Same weights, greedy: the two runtimes must produce the same reply and the same prompt length."""
    params = SamplingParams(max_tokens=30)
    a = run_turn(smollm2, COUNT, params)
    b = run_turn(smollm2_hf, COUNT, params)
    assert a.text == b.text
    assert a.done.input_tokens == b.done.input_tokens


@pytest.mark.parametrize("fixture", ["smollm2", "tiny_llama"])
def test_max_tokens_ends_with_length(fixture, request):
    model = request.getfixturevalue(fixture)
    result = run_turn(model, COUNT, SamplingParams(max_tokens=5))
    assert result.done.stop_reason == "length"  # counting to 40 needs far more than 5 tokens
    assert result.metrics.output_tokens == result.done.output_tokens == 5


@pytest.mark.parametrize("fixture", ["smollm2", "smollm2_hf"])
def test_stop_string_ends_turn_and_is_not_shown(fixture, request):
    model = request.getfixturevalue(fixture)
    result = run_turn(model, COUNT, SamplingParams(max_tokens=80, stop=("7",)))
    assert result.done.stop_reason == "stop"
    assert "7" not in result.text
    assert "6" in result.text


@pytest.mark.parametrize("fixture", ["smollm2", "tiny_llama"])
def test_cancel_between_tokens(fixture, request):
    model = request.getfixturevalue(fixture)
    cancel = threading.Event()
    seen = []

    def on_event(event):
        if isinstance(event, Token):
            seen.append(event)
            if len(seen) == 3:
                cancel.set()

    result = run_turn(model, COUNT, SamplingParams(max_tokens=200), cancel=cancel, on_event=on_event)
    assert result.done.stop_reason == "cancelled"
    assert 3 <= result.metrics.output_tokens <= 5


def test_context_overflow_is_a_clear_error(smollm2):
    long_prompt = [{"role": "user", "content": "word " * 5000}]
    result = run_turn(smollm2, long_prompt, SamplingParams(max_tokens=5))
    assert result.done.stop_reason == "error"
    assert "context" in result.done.error and "tokens" in result.done.error


def test_sampling_with_seed_is_reproducible(smollm2):
    params = SamplingParams(max_tokens=20, temperature=0.9, top_p=0.95, seed=7)
    poem = [{"role": "user", "content": "Write a line about the sea."}]
    assert run_turn(smollm2, poem, params).text == run_turn(smollm2, poem, params).text


def test_llamacpp_timing_agrees_with_its_own_perf_counters(smollm2):
    """taskclock's clock vs llama.cpp's llama_perf_context for the same call: within 10%."""
    result = run_turn(smollm2, COUNT, SamplingParams(max_tokens=60))
    perf = result.done.extra["llama_perf"]
    ours = result.metrics
    # llama.cpp's eval counters cover every decode call after the prompt (one per token after the first).
    llama_decode_tps = perf["eval_tokens"] * 1000 / perf["eval_ms"]
    assert ours.decode_tps == pytest.approx(llama_decode_tps, rel=0.10)
    # TTFT = prompt eval + the first sampled token; llama.cpp counts only the prompt eval.
    assert ours.ttft_s == pytest.approx(perf["prompt_eval_ms"] / 1000, rel=0.10, abs=0.005)
    assert perf["prompt_tokens"] <= result.done.input_tokens


def test_hf_generation_failure_ends_stream_with_error(tiny_llama, monkeypatch):
    """A model that raises mid-generation: the stream ends with Done(error), keeping earlier tokens."""
    original = tiny_llama.model.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("simulated device fault")
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_llama.model, "forward", flaky)
    result = run_turn(tiny_llama, COUNT, SamplingParams(max_tokens=50))
    assert result.done.stop_reason == "error"
    assert "simulated device fault" in result.done.error
    assert 1 <= metrics.output_tokens(result.events) <= 3


def test_hf_runs_every_generate_on_one_long_lived_thread(tiny_llama, monkeypatch):
    """torch keeps per-thread state (CUDA graph trees under torch.compile are thread-local): a fresh thread
    per turn would throw away what compile() warmed up. Single turns and batches share one generation thread."""
    original, threads = tiny_llama.model.forward, set()

    def recording(*args, **kwargs):
        threads.add(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_llama.model, "forward", recording)
    for _ in range(2):
        assert run_turn(tiny_llama, COUNT, SamplingParams(max_tokens=4)).done.stop_reason in ("length", "eos")
    tiny_llama.stream_batch([COUNT, QUESTION], SamplingParams(max_tokens=4))
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_hf_stream_abandoned_early_stops_its_generation(tiny_llama, monkeypatch):
    """A consumer that stops reading ends generate() at its next step, so the next turn does not queue behind
    the rest of the abandoned one."""
    original, steps = tiny_llama.model.forward, []

    def counting(*args, **kwargs):
        steps.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_llama.model, "forward", counting)
    stream = tiny_llama.stream(COUNT, SamplingParams(max_tokens=200))
    next(e for e in stream if isinstance(e, Token))
    stream.close()
    tiny_llama.worker.submit(lambda: None).wait()  # runs once the abandoned generate() has returned
    assert len(steps) < 20
    assert run_turn(tiny_llama, COUNT, SamplingParams(max_tokens=3)).metrics.output_tokens == 3


def test_hf_process_exits_cleanly_after_close(tiny_llama_dir):
    """A generation thread still winding down when the interpreter exits aborts the process from C++
    ("terminate called without an active exception"): close() must wait for it."""
    script = (
        "from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model\n"
        "from taskclock.runtime.turn import run_turn\n"
        f"model = load_model(ModelSpec('tiny', 'hf', {str(tiny_llama_dir)!r}))\n"
        "run_turn(model, [{'role': 'user', 'content': 'w1 w2'}], SamplingParams(max_tokens=4))\n"
        "model.stream_batch([[{'role': 'user', 'content': 'w3'}]] * 2, SamplingParams(max_tokens=4))\n"
        "model.close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "terminate called" not in proc.stderr


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_bitsandbytes_quantized_models_stream(quant):
    from taskclock.runtime.backend import load_model
    from taskclock.runtime.models import resolve

    model = load_model(resolve(f"smollm2-hf-{quant}"))
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=8))
    finally:
        model.close()
    assert result.done.stop_reason in ("eos", "length")
    assert result.metrics.output_tokens > 0 and result.metrics.ttft_s > 0
