"""Real batched generation on transformers: left-padded batches give the same greedy text as batch 1."""
from __future__ import annotations

import threading

import pytest

from taskclock.runtime import metrics
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.events import Done, Submitted, Token
from taskclock.runtime.turn import run_turn

PROMPTS = ["a b c", "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11", "q r s t ? w40"]


def _conversation(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _ids(events) -> list[int]:
    return [e.token_id for e in events if isinstance(e, Token) and e.count > 0]


def test_tiny_batch_matches_batch_one(tiny_llama):
    params = SamplingParams(max_tokens=12)
    batch = tiny_llama.stream_batch([_conversation(p) for p in PROMPTS], params)
    singles = [run_turn(tiny_llama, _conversation(p), params).events for p in PROMPTS]
    assert len(batch) == len(PROMPTS)
    for together, alone in zip(batch, singles, strict=True):
        assert _ids(together) == _ids(alone)
        assert metrics.output_text(together) == metrics.output_text(alone)
        assert metrics.input_tokens(together) == metrics.input_tokens(alone)
        assert together[-1].stop_reason == alone[-1].stop_reason


def test_batch_clock_is_shared_and_each_request_ends_on_its_own(tiny_llama):
    batch = tiny_llama.stream_batch([_conversation(p) for p in PROMPTS], SamplingParams(max_tokens=12))
    submitted = {e.t_ns for events in batch for e in events if isinstance(e, Submitted)}
    assert len(submitted) == 1
    firsts = {next(e.t_ns for e in events if isinstance(e, Token)) for events in batch}
    assert len(firsts) == 1  # every request's first token is the batch's first step
    for events in batch:
        done = events[-1]
        assert isinstance(done, Done) and done.extra["batch_size"] == len(PROMPTS)
        last_token = [e for e in events if isinstance(e, Token) and e.count > 0][-1]
        assert done.t_ns >= last_token.t_ns
        assert done.output_tokens == len(_ids(events)) <= 12


def test_cancel_ends_every_request(tiny_llama):
    cancel = threading.Event()
    cancel.set()
    batch = tiny_llama.stream_batch([_conversation(p) for p in PROMPTS], SamplingParams(max_tokens=50), cancel)
    assert [events[-1].stop_reason for events in batch] == ["cancelled"] * len(PROMPTS)


def test_prompt_over_the_context_fails_alone(tiny_llama):
    too_long = " ".join(["w1"] * 600)  # the tiny model holds 512 positions
    batch = tiny_llama.stream_batch([_conversation("a b"), _conversation(too_long)], SamplingParams(max_tokens=4))
    assert batch[0][-1].stop_reason in ("eos", "length")
    assert batch[1][-1].stop_reason == "error" and "context" in batch[1][-1].error


@pytest.mark.parametrize("task_text", [
    "What is the capital of France? Answer with one word.",
    "Name three primary colours.",
])
def test_smollm2_hf_batch_of_two_matches_batch_one(smollm2_hf, task_text):
    params = SamplingParams(max_tokens=12)
    short = "Say hello."
    batch = smollm2_hf.stream_batch([_conversation(short), _conversation(task_text)], params)
    for together, text in zip(batch, (short, task_text), strict=True):
        assert metrics.output_text(together) == run_turn(smollm2_hf, _conversation(text), params).text
