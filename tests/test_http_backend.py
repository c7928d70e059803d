"""The HTTP backend against real servers on loopback: llama-cpp-python's OpenAI server on SmolLM2, and tiny
scripted http.server instances for the failures a healthy server will not produce on request."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from llama_server import (
    LlamaServer,
    content_chunk,
    free_port,
    smollm2_gguf,
    sse,
)

from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.errors import BackendError, ModelNotFound
from taskclock.runtime.events import Token
from taskclock.runtime.models import resolve
from taskclock.runtime.options import HTTPOptions
from taskclock.runtime.turn import run_turn

GREEDY = SamplingParams(max_tokens=32)
ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def served(llama_server):
    model = load_model(resolve(llama_server.url))
    yield model
    model.close()


def scripted_model(server, **options) -> object:
    return load_model(ModelSpec("scripted", "http", server.url, backend_options=HTTPOptions(**options)))


def assert_one_line(text: str | None) -> None:
    assert text and "\n" not in text and "Traceback" not in text


def test_greedy_text_matches_in_process_llamacpp(served):
    # A model of its own: the session-wide one keeps earlier tests' prompts in its cache, and reusing a cached
    # prefix computes the same logits in a different order, which can flip a greedy pick.
    own = load_model(resolve("smollm2"))
    try:
        remote = run_turn(served, ASK, GREEDY)
        local = run_turn(own, ASK, GREEDY)
    finally:
        own.close()
    assert remote.done.stop_reason == local.done.stop_reason
    assert remote.text == local.text
    assert remote.text.strip()


def test_timings_are_measured_per_chunk(served):
    result = run_turn(served, ASK, GREEDY)
    figures = result.metrics
    assert figures.ttft_s is not None and figures.ttft_s > 0
    assert figures.decode_tps is not None and figures.decode_tps > 0
    assert figures.task_time_s >= figures.ttft_s
    stamps = [e.t_ns for e in result.events if isinstance(e, Token) and e.count]
    assert len(stamps) > 2 and stamps == sorted(stamps) and len(set(stamps)) > 1
    # llama-cpp-python's server sends no usage in a stream: every content chunk counts as one token.
    assert result.done.extra["token_count_source"] == "chunks"
    assert figures.output_tokens == len(stamps)


def test_completion_endpoint_matches_in_process_plain_prompt(llama_server):
    spec = ModelSpec("plain", "http", llama_server.url, chat=False)
    local_spec = ModelSpec("plain-local", "llamacpp", str(smollm2_gguf()), chat=False)
    prompt = [{"role": "user", "content": "The capital of France is"}]
    remote, local = load_model(spec), load_model(local_spec)
    try:
        assert run_turn(remote, prompt, GREEDY).text == run_turn(local, prompt, GREEDY).text
    finally:
        remote.close()
        local.close()


def test_count_tokens_uses_the_servers_tokenizer(served, smollm2):
    for text in ("hello world, how are you?", "Ünïcödé tokenization — 12345"):
        assert served.count_tokens(text) == smollm2.count_tokens(text)


def test_first_served_model_is_picked_and_unknown_names_are_refused(served, llama_server):
    assert served.api_model  # the id the server listed
    with pytest.raises(ModelNotFound) as info:
        load_model(resolve(f"{llama_server.url}#no-such-model"))
    assert "does not serve 'no-such-model'" in str(info.value)
    assert_one_line(str(info.value))


def test_cancel_between_chunks_then_the_model_still_works(served):
    cancel = threading.Event()

    def stop_after_three(event) -> None:
        if isinstance(event, Token) and sum(isinstance(e, Token) for e in seen) >= 3:
            cancel.set()
        seen.append(event)

    seen: list = []
    cut = run_turn(served, ASK, SamplingParams(max_tokens=200), cancel=cancel, on_event=stop_after_three)
    assert cut.done.stop_reason == "cancelled"
    assert 3 <= cut.metrics.output_tokens < 200
    again = run_turn(served, ASK, GREEDY)
    assert again.done.stop_reason in ("length", "eos") and again.text


def test_connection_refused_is_one_line():
    port = free_port()  # bound then released: nothing listens there
    with pytest.raises(BackendError) as info:
        load_model(resolve(f"http://127.0.0.1:{port}/v1"))
    assert str(info.value) == (f"cannot reach http://127.0.0.1:{port}/v1: connection refused; "
                               "start the server or check the URL")


def test_server_killed_mid_stream_keeps_the_partial_reply():
    server = LlamaServer(smollm2_gguf())
    try:
        model = load_model(resolve(server.url))
        tokens = []

        def kill_after_five(event) -> None:
            if isinstance(event, Token):
                tokens.append(event)
                if len(tokens) == 5:
                    server.kill()

        story = [{"role": "user", "content": "Write a very long story about a dragon."}]
        result = run_turn(model, story, SamplingParams(max_tokens=1000), on_event=kill_after_five)
        assert result.done.stop_reason == "error"
        assert_one_line(result.done.error)
        assert "closed the connection mid-reply" in result.done.error
        assert len(result.text) >= len("".join(t.text for t in tokens[:5])) > 0
        assert result.metrics.ttft_s is not None
        after = run_turn(model, ASK, GREEDY)  # the process and the model object stay usable
        assert after.done.stop_reason == "error" and "connection refused" in after.done.error
        model.close()
    finally:
        server.stop()


@pytest.mark.parametrize("status", [400, 500])
def test_http_error_status_gives_the_servers_message(scripted_server, status):
    model = scripted_model(scripted_server)
    scripted_server.script = (status, {"error": {"message": f"boom {status}\nsecond line", "type": "x"}})
    result = run_turn(model, ASK, GREEDY)
    assert result.done.stop_reason == "error"
    expected = f"{scripted_server.url}/chat/completions answered HTTP {status}: boom {status} second line"
    assert result.done.error == expected


def test_malformed_sse_line_keeps_the_partial_reply(scripted_server):
    model = scripted_model(scripted_server)
    scripted_server.script = [sse(content_chunk("Hello")), sse(content_chunk(" there")), b"data: {not json\n\n"]
    result = run_turn(model, ASK, GREEDY)
    assert result.text == "Hello there"
    assert result.done.stop_reason == "error"
    assert result.done.error == "malformed SSE line from the server: '{not json'"


def test_stalled_server_times_out_and_the_model_stays_usable(scripted_server):
    model = scripted_model(scripted_server, timeout_s=0.5)
    scripted_server.script = [sse(content_chunk("Partial")), 3.0, sse(content_chunk(" late"))]
    result = run_turn(model, ASK, GREEDY)
    assert result.text == "Partial"
    assert result.done.stop_reason == "error"
    assert result.done.error == f"{scripted_server.url}/chat/completions sent nothing for 0.5 s (read timeout)"
    scripted_server.script = [sse(content_chunk("Fine", "stop")), sse("[DONE]")]
    assert run_turn(model, ASK, GREEDY).text == "Fine"


def test_stream_cut_without_finish_is_an_error(scripted_server):
    model = scripted_model(scripted_server)
    scripted_server.script = [sse(content_chunk("Half"))]
    result = run_turn(model, ASK, GREEDY)
    assert result.text == "Half" and result.done.stop_reason == "error"
    assert result.done.error == f"{scripted_server.url}/chat/completions ended the stream without finishing the reply"


def test_usage_and_server_timings_are_kept(scripted_server):
    model = scripted_model(scripted_server)
    timings = {"prompt_n": 9, "prompt_ms": 4.5, "predicted_n": 7, "predicted_ms": 70.0}
    scripted_server.script = [
        sse(content_chunk("Red,")), sse(content_chunk(" green")), sse(content_chunk(" and blue.", "stop")),
        sse({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
             "timings": timings}),
        sse("[DONE]"),
    ]
    result = run_turn(model, ASK, GREEDY)
    assert result.text == "Red, green and blue."
    assert result.done.stop_reason == "eos"
    assert (result.done.input_tokens, result.done.output_tokens) == (9, 7)
    # 7 tokens in 3 chunks: 2 each, the one left over to the chunk with the most text
    assert result.done.extra == {"token_count_source": "usage-spread", "arrival_counts": [2, 2, 3],
                                 "server_timings": timings}
    assert result.metrics.output_tokens == 7


def test_request_carries_sampling_stop_and_api_key(scripted_server, monkeypatch):
    monkeypatch.setenv("TASKCLOCK_TEST_KEY", "sekret")
    model = scripted_model(scripted_server, api_key_env="TASKCLOCK_TEST_KEY")
    scripted_server.script = [sse(content_chunk("one, two")), sse(content_chunk(" STOP three", "stop")), sse("[DONE]")]
    params = SamplingParams(max_tokens=9, temperature=0.0, seed=7, stop=("STOP",))
    result = run_turn(model, ASK, params)
    assert result.text == "one, two " and result.done.stop_reason == "stop"
    body = scripted_server.requests[-1]
    assert body["model"] == "scripted" and body["messages"] == ASK and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert (body["max_tokens"], body["temperature"], body["seed"], body["stop"]) == (9, 0.0, 7, ["STOP"])
    assert (body["top_k"], body["repeat_penalty"]) == (1, 1.0)
    assert scripted_server.auth == "Bearer sekret"


def test_missing_api_key_variable_is_one_line(scripted_server, monkeypatch):
    monkeypatch.delenv("TASKCLOCK_NO_SUCH_KEY", raising=False)
    with pytest.raises(BackendError) as info:
        scripted_model(scripted_server, api_key_env="TASKCLOCK_NO_SUCH_KEY")
    assert "TASKCLOCK_NO_SUCH_KEY" in str(info.value)
    assert_one_line(str(info.value))


def test_configured_http_model_resolves(scripted_server):
    spec = replace(resolve(f"{scripted_server.url}#scripted"), name="remote")
    assert (spec.backend, spec.source, HTTPOptions.of(spec).api_model) == ("http", scripted_server.url, "scripted")
    model = load_model(spec)
    assert model.api_model == "scripted" and model.count_tokens("x") is None


@pytest.mark.parametrize("usage_extra, timings, cached", [
    ({"prompt_tokens_details": {"cached_tokens": 6}}, None, 6),  # vLLM / OpenAI
    ({}, {"prompt_n": 3, "cache_n": 6, "prompt_ms": 1.0}, 6),  # llama.cpp's llama-server
    ({}, {"prompt_n": 9, "prompt_ms": 4.5}, None),  # a server that says nothing about its cache
])
def test_cached_prompt_tokens_are_kept(scripted_server, usage_extra, timings, cached):
    model = scripted_model(scripted_server)
    last = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1, **usage_extra}}
    if timings:
        last["timings"] = timings
    scripted_server.script = [sse(content_chunk("Hi", "stop")), sse(last), sse("[DONE]")]
    result = run_turn(model, ASK, GREEDY)
    assert result.done.extra.get("cached_prompt_tokens") == cached
