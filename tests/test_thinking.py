"""Thinking apart from answering (issue 15 §2): the phase splitter, the metrics, the HTTP backend against a
scripted reasoning server on loopback, the config switch reaching the request, the `mc` scorer, the bench
summary, a real model through llama.cpp, and the app's meter and collapsed thinking."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
from app_helpers import make_app, ready, send, settle, wait_for
from helpers import run_cli
from llama_server import content_chunk, reasoning_chunk, running_scripted_server, sse, thinking_script
from scripted import scripted_loader

from taskclock.runtime import bench, metrics, summary
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.config import load_config
from taskclock.runtime.errors import ConfigError
from taskclock.runtime.events import Done, Submitted, Token
from taskclock.runtime.mmlu import Question
from taskclock.runtime.models import resolve
from taskclock.runtime.options import HTTPOptions
from taskclock.runtime.phases import PhaseSplitter
from taskclock.runtime.reply import Reply
from taskclock.runtime.tasks import BUILTIN
from taskclock.runtime.turn import run_turn

ASK = [{"role": "user", "content": "Which is it?"}]
MS = 1_000_000


def split(pieces: list[str], **options) -> list[Token]:
    """Feed ``pieces`` one per arrival (arrival i at i ms), then end the reply at 100 ms."""
    splitter = PhaseSplitter(**options)
    events = [e for i, piece in enumerate(pieces) for e in splitter.feed(i * MS, piece)]
    return events + splitter.flush(100 * MS)


def texts(events: list[Token], phase: str) -> str:
    return "".join(e.text for e in events if e.phase == phase)


def arrivals(events: list[Token], phase: str) -> list[int]:
    return [e.t_ns // MS for e in events if e.phase == phase and e.count]


# ---- the splitter ----------------------------------------------------------------------------------

def test_tags_split_across_tokens_are_found_and_dropped_and_held_tokens_keep_their_times():
    events = split(["<th", "ink>", "Let me", " see.</", "think>", "\n\nB"])
    assert texts(events, "thinking") == "Let me see."
    assert texts(events, "answer") == "\n\nB"
    assert arrivals(events, "thinking") == [0, 1, 2, 3, 4]  # "<th" was held, then stamped with its own time
    assert arrivals(events, "answer") == [5]


def test_leading_whitespace_before_the_opening_tag_is_allowed():
    events = split(["\n", " <think>", "x", "</think>", "A"])
    assert (texts(events, "thinking"), texts(events, "answer")) == ("x", "A")
    assert arrivals(events, "thinking") == [0, 1, 2, 3]


def test_an_answer_that_starts_like_a_tag_is_released_whole_with_its_own_arrivals():
    events = split(["<b", ">bold</b>", " text"])
    assert texts(events, "answer") == "<b>bold</b> text" and not texts(events, "thinking")
    assert arrivals(events, "answer") == [0, 1, 2]


def test_a_tag_in_the_middle_of_an_answer_is_text():
    events = split(["Tags look like ", "<think>x</think>", "."])
    assert texts(events, "answer") == "Tags look like <think>x</think>." and not texts(events, "thinking")


def test_one_token_that_ends_the_thinking_and_starts_the_answer_counts_as_thinking():
    events = split(["<think>", "hmm", "</think>The answer"])
    assert [(e.t_ns // MS, e.phase, e.text, e.count) for e in events] == [
        (0, "thinking", "", 1), (1, "thinking", "hmm", 1), (2, "thinking", "", 1), (2, "answer", "The answer", 0)]


def test_a_prompt_that_opened_the_thinking_starts_in_thinking():
    events = split(["Because", " x.", "</think>", "C"], thinking=True)
    assert (texts(events, "thinking"), texts(events, "answer")) == ("Because x.", "C")


def test_a_reply_that_never_closes_its_thinking_ends_as_thinking_with_the_partial_tag_released():
    events = split(["<think>", "still", " going</thi"])
    assert texts(events, "thinking") == "still going</thi" and not texts(events, "answer")
    assert events[-1] == Token(100 * MS, "</thi", None, 0, "thinking")  # untimed: released at the end


def test_a_reply_that_ends_while_undecided_is_answer():
    events = split([" ", "<thi"])
    assert texts(events, "answer") == " <thi" and arrivals(events, "answer") == [0, 1]


def test_custom_tags_and_no_tags():
    assert texts(split(["[r]a", "b[/r]c"], tags=("[r]", "[/r]")), "thinking") == "ab"
    events = split(["<think>", "x</think>"], tags=())
    assert texts(events, "answer") == "<think>x</think>" and arrivals(events, "answer") == [0, 1]


def test_stop_strings_apply_to_the_answer_only():
    reply = Reply(["\n\n"], phases=PhaseSplitter())
    shown = [e for piece in ["<think>", "a\n\nb", "</think>", "C", "\n\nmore"] for e in reply.text(0, piece)]
    assert texts(shown, "thinking") == "a\n\nb"  # a blank line inside the thinking does not end the turn
    assert texts(shown, "answer") == "C" and reply.stopped


# ---- metrics -----------------------------------------------------------------------------------------

def turn_events(parts: list[tuple[int, str, str]], done_ms: int, reason: str = "eos", **done) -> list:
    """Submitted at 0, then (ms, phase, text) tokens, then Done."""
    return [Submitted(0), *(Token(ms * MS, text, phase=phase) for ms, phase, text in parts),
            Done(done_ms * MS, reason, **done)]


def test_thinking_metrics_worked_by_hand():
    events = turn_events([(100, "thinking", "Hmm,"), (150, "thinking", " maybe B"), (400, "answer", "B is"),
                          (450, "answer", " right.")], 500)
    figures = metrics.compute(events)
    assert (figures.thinking_tokens, figures.answer_tokens, figures.output_tokens) == (2, 2, 4)
    assert figures.ttft_s == pytest.approx(0.1) and figures.ttfa_s == pytest.approx(0.4)
    assert figures.thinking_s == pytest.approx(0.3)  # first thinking token to first answer token
    assert (figures.thinking_words, figures.output_words) == (3, 6)


def test_a_turn_that_did_not_think_has_no_thinking_figures():
    figures = metrics.compute(turn_events([(100, "answer", "Hi"), (150, "answer", " there")], 200))
    assert (figures.thinking_tokens, figures.answer_tokens, figures.thinking_s, figures.ttfa_s) == (None,) * 4
    assert figures.thinking_words is None and figures.output_tokens == 2


def test_a_servers_reasoning_count_wins_over_chunks():
    events = turn_events([(100, "thinking", "x"), (200, "answer", "y")], 300, output_tokens=40,
                         extra={"thinking_tokens": 31})
    assert (metrics.thinking_tokens(events), metrics.answer_tokens(events)) == (31, 9)


# ---- HTTP: a scripted reasoning server on loopback -------------------------------------------------------

@pytest.fixture
def scripted_server():
    """The scripted server, sending each piece the moment its script says (see PromptHandler)."""
    with running_scripted_server(prompt=True) as server:
        yield server


def scripted(server, **fields):
    """An HTTP model of the scripted server; ``extra_body`` goes to its backend options, the rest to the spec."""
    options = HTTPOptions(extra_body=fields.pop("extra_body", {}))
    return load_model(ModelSpec("scripted", "http", server.url, backend_options=options, **fields))


GAP_S = 0.05
THINKING = ["Let", " me", " think", " about", " it", "."]
ANSWER = ["\n\nThe", " answer", " is", " B."]


def check_schedule(server, result, thinking_pieces: int) -> None:
    """The figures follow the server's schedule as it ran (``server.sent``: when each piece went out, on the same
    clock): the first token and the first answer token are each timed within 10 ms after the server sent them,
    never before, and the thinking lasted as long as the server spent between them, within 10 ms."""
    figures, submitted = result.metrics, result.events[0].t_ns
    first_sent, answer_sent = server.sent[0], server.sent[thinking_pieces]
    assert answer_sent - first_sent >= thinking_pieces * GAP_S * 1e9  # the schedule's pauses really happened
    assert 0 <= figures.ttft_s - (first_sent - submitted) / 1e9 <= 0.010
    assert 0 <= figures.ttfa_s - (answer_sent - submitted) / 1e9 <= 0.010
    assert figures.thinking_s == pytest.approx((answer_sent - first_sent) / 1e9, abs=0.010)


def test_reasoning_content_then_answer_matches_the_schedule(scripted_server):
    scripted_server.script = thinking_script(THINKING, ANSWER, GAP_S)
    result = run_turn(scripted(scripted_server), ASK, SamplingParams(max_tokens=64))
    figures = result.metrics
    assert (figures.thinking_tokens, figures.answer_tokens, figures.output_tokens) == (6, 4, 10)
    check_schedule(scripted_server, result, len(THINKING))
    assert result.thinking == "".join(THINKING) and result.text == "".join(ANSWER)
    assert result.done.extra["thinking_count_source"] == "chunks" and figures.stop_reason == "eos"


def test_the_servers_reasoning_tokens_are_used_when_sent(scripted_server):
    usage = {"prompt_tokens": 9, "completion_tokens": 40, "completion_tokens_details": {"reasoning_tokens": 33}}
    scripted_server.script = thinking_script(THINKING, ANSWER, 0.0, usage=usage)
    result = run_turn(scripted(scripted_server), ASK, SamplingParams(max_tokens=64))
    assert (result.metrics.thinking_tokens, result.metrics.answer_tokens) == (33, 7)
    assert result.done.extra["thinking_count_source"] == "usage"


def test_reasoning_under_its_newer_name_counts_too(scripted_server):
    scripted_server.script = [sse(reasoning_chunk("hmm", key="reasoning")), sse(content_chunk("A", "stop")),
                              sse("[DONE]")]
    result = run_turn(scripted(scripted_server), ASK, SamplingParams(max_tokens=8))
    assert (result.thinking, result.text, result.metrics.thinking_tokens) == ("hmm", "A", 1)


@pytest.mark.parametrize(("thinking", "thinking_tokens"), [(["<think>", "Let", " me", " see", "</think>"], 5),
                                                           (["<thi", "nk>", "Let", " me", " see</th", "ink>"], 6)],
                         ids=["whole-tags", "tags-split-across-chunks"])
def test_think_tags_in_plain_content_match_the_schedule(scripted_server, thinking, thinking_tokens):
    scripted_server.script = thinking_script(thinking, ANSWER, GAP_S, tagged=True)
    result = run_turn(scripted(scripted_server), ASK, SamplingParams(max_tokens=64))
    assert (result.metrics.thinking_tokens, result.metrics.answer_tokens) == (thinking_tokens, 4)
    assert result.thinking == "Let me see" and result.text == "".join(ANSWER)
    check_schedule(scripted_server, result, len(thinking))


def test_a_raw_completion_server_with_tags_is_split_too(scripted_server):
    scripted_server.script = [sse({"choices": [{"index": 0, "text": t, "finish_reason": None}]})
                              for t in ("<think>", "x", "</think>", "D")] + [sse("[DONE]")]
    result = run_turn(scripted(scripted_server, chat=False), ASK, SamplingParams(max_tokens=8))
    assert (result.thinking, result.text, result.metrics.thinking_tokens) == ("x", "D", 3)


@pytest.mark.parametrize("server_stops", [True, False], ids=["server-says-length", "client-cuts"])
def test_thinking_until_max_tokens_ends_with_length_and_no_ttfa(scripted_server, server_stops):
    pieces = [sse(reasoning_chunk(f" step{i}")) for i in range(8 if server_stops else 20)]
    scripted_server.script = pieces + ([sse(content_chunk("", "length"))] if server_stops else []) + [sse("[DONE]")]
    result = run_turn(scripted(scripted_server), ASK, SamplingParams(max_tokens=8))
    figures = result.metrics
    assert figures.stop_reason == "length" and result.done.error is None
    assert (figures.thinking_tokens, figures.answer_tokens, figures.ttfa_s) == (8, 0, None)
    assert figures.thinking_s is not None and result.text == ""


def test_a_malformed_reasoning_delta_is_one_clear_error(scripted_server):
    scripted_server.script = [sse({"choices": [{"index": 0, "delta": {"reasoning_content": 5}}]})]
    result = run_turn(scripted(scripted_server), ASK, SamplingParams(max_tokens=8))
    assert result.done.stop_reason == "error"
    assert "malformed chunk from the server: reasoning is not a string" in result.done.error


# ---- the thinking switch ------------------------------------------------------------------------------

@pytest.mark.parametrize(("thinking", "sent"), [(True, {"enable_thinking": True}),
                                               (False, {"enable_thinking": False}), (None, None)])
def test_the_thinking_switch_reaches_the_request_body(scripted_server, thinking, sent):
    run_turn(scripted(scripted_server, thinking=thinking), ASK, SamplingParams(max_tokens=4))
    assert scripted_server.requests[-1].get("chat_template_kwargs") == sent


OPEN_WHEN_ASKED = "{% if enable_thinking %} w7{% endif %}"  # appended to a model's own chat template


def check_switched_reply(result, thinking: bool) -> None:
    """With ``think_tags=("w7", "w8")``: a prompt that ended with the opening tag starts the reply in thinking."""
    first = next(e for e in result.events if isinstance(e, Token) and e.count)
    assert (first.phase == "thinking") is thinking
    assert (result.metrics.thinking_tokens is not None) is thinking


@pytest.mark.parametrize("thinking", [True, False])
def test_the_thinking_switch_reaches_a_transformers_chat_template(tiny_llama_dir, thinking):
    """A template that opens the thinking when asked (as Qwen3's "thinking" variants do): switched on, the prompt
    ends with the opening tag and the reply starts in thinking; switched off, it does not."""
    model = load_model(ModelSpec("tiny", "hf", str(tiny_llama_dir), thinking=thinking, think_tags=("w7", "w8")))
    try:
        model.tokenizer.chat_template += OPEN_WHEN_ASKED  # the fixture's, extended
        assert model.tokenizer.decode(model.encode(ASK)).endswith("w7") is thinking
        result = run_turn(model, ASK, SamplingParams(max_tokens=8))
    finally:
        model.close()
    check_switched_reply(result, thinking)


@pytest.mark.parametrize("thinking", [True, False])
def test_the_thinking_switch_reaches_llama_cpps_chat_template(thinking):
    """The same through llama.cpp's Jinja formatter, with SmolLM2's own GGUF template extended the same way."""
    model = load_model(replace(resolve("smollm2"), thinking=thinking, think_tags=("w7", "w8")))
    try:
        gguf = model.formatter
        model.formatter = type(gguf)(template=gguf.template + OPEN_WHEN_ASKED,
                                     eos_token=gguf.eos_token, bos_token=gguf.bos_token)
        prompt = model.llm.detokenize(model.encode(ASK), special=True).decode()
        assert prompt.endswith("w7") is thinking
        result = run_turn(model, ASK, SamplingParams(max_tokens=8))
    finally:
        model.close()
    check_switched_reply(result, thinking)


def test_options_chat_template_kwargs_merge_over_the_switch(scripted_server):
    model = scripted(scripted_server, thinking=False, extra_body={"chat_template_kwargs": {"custom": 1}})
    run_turn(model, ASK, SamplingParams(max_tokens=4))
    assert scripted_server.requests[-1]["chat_template_kwargs"] == {"enable_thinking": False, "custom": 1}


def test_config_reads_thinking_and_think_tags(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[models.r1]\nbackend = "http"\nsource = "http://127.0.0.1:1/v1"\nthinking = true\n'
                    'think_tags = ["<reason>", "</reason>"]\n')
    spec = load_config(path).models["r1"]
    assert spec.thinking is True and spec.think_tags == ("<reason>", "</reason>")
    path.write_text('[models.r1]\nbackend = "http"\nsource = "x"\nthink_tags = ["<t>"]\n')
    with pytest.raises(ConfigError, match=r"line 4.*think_tags must be two different non-empty strings"):
        load_config(path)
    path.write_text('[models.r1]\nbackend = "http"\nsource = "x"\nthinking = "yes"\n')
    with pytest.raises(ConfigError, match="thinking must be a boolean"):
        load_config(path)


def test_run_json_carries_the_thinking_figures(scripted_server, tmp_path):
    scripted_server.script = thinking_script(THINKING, ANSWER, 0.0)
    config = tmp_path / "config.toml"
    config.write_text(f'[models.reasoner]\nbackend = "http"\nsource = "{scripted_server.url}"\nthinking = true\n')
    proc = run_cli("run", "Which?", "--model", "reasoner", "--config", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["thinking_tokens"], out["answer_tokens"]) == (6, 4) and out["ttfa_s"] >= out["ttft_s"]
    assert out["text"] == "".join(ANSWER) and out["thinking"] == "".join(THINKING)
    assert scripted_server.requests[-1]["chat_template_kwargs"] == {"enable_thinking": True}


# ---- mc scoring and the bench summary ------------------------------------------------------------------

QUESTION = Question("astronomy", 0, "Which planet is largest?", ("Mars", "Venus", "Jupiter", "Earth"), "C")


def test_mc_reads_the_letter_from_the_answer_only():
    events = turn_events([(10, "thinking", "A is small, so the answer is A? No."), (50, "answer", "C")], 60)
    row = bench.make_row(ModelSpec("m", "http", "x"), BUILTIN["mc"], QUESTION, events, 1)
    assert (row["parsed"], row["correct"], row["reply"]) == ("C", True, "C")
    assert row["thinking"] == "A is small, so the answer is A? No." and row["thinking_tokens"] == 1


def result_row(model: str, events) -> dict:
    return bench.make_row(ModelSpec(model, "http", "x"), BUILTIN["mc"], QUESTION, events, 1)


def test_the_verbosity_table_splits_thinking_only_when_a_row_thought():
    plain = [result_row("plain", turn_events([(100, "answer", "C is it")], 150))]
    cells = summary.summarize(plain, ["plain"], ["mc"], {"mc"})
    assert not {c.key for c in summary.shown_columns(cells)} & summary.THINKING_KEYS

    thinker = [result_row("thinker", turn_events([(100, "thinking", "one two three"), (200, "thinking", " four"),
                                                  (300, "answer", "C")], 350))]
    cells = summary.summarize(plain + thinker, ["plain", "thinker"], ["mc"], {"mc"})
    assert summary.THINKING_KEYS <= {c.key for c in summary.shown_columns(cells)}
    by_model = {c.model: c for c in cells}
    think = by_model["thinker"]
    assert (think.mean_thinking_tokens, think.mean_answer_tokens) == (2, 1)
    assert (think.mean_thinking_words, think.mean_answer_words) == (4, 1)
    assert think.mean_ttfa_s == pytest.approx(0.3)
    assert by_model["plain"].mean_thinking_tokens is None  # a cell where nothing thought stays unsplit


# ---- real models: the splitter on llama.cpp's and transformers' own tokens ----------------------------------

@pytest.fixture(params=["smollm2", "smollm2-hf"])
def real_model(request):
    return request.getfixturevalue(request.param.replace("-", "_"))


def rerun_with_tags(model, tags: tuple[str, str]):
    """The same greedy turn on the same model loaded again with ``think_tags`` set."""
    tagged = load_model(replace(resolve(model.spec.name), think_tags=tags))
    try:
        return run_turn(tagged, ASK, SamplingParams(max_tokens=24))
    finally:
        tagged.close()


def check_split(first, second) -> None:
    """The tagged turn made the same tokens, each counted once, thinking first, arrivals in order."""
    figures = second.metrics
    assert figures.output_tokens == first.metrics.output_tokens
    assert figures.thinking_tokens + figures.answer_tokens == figures.output_tokens
    assert 0 < figures.thinking_tokens < figures.output_tokens
    assert figures.ttft_s < figures.ttfa_s <= figures.task_time_s
    timed = [e for e in second.events if isinstance(e, Token) and e.count]
    assert [e.t_ns for e in timed] == sorted(e.t_ns for e in timed)
    phases = [e.phase for e in timed]
    assert phases == sorted(phases, reverse=True)  # every thinking token before every answer token


def test_real_tokens_split_at_custom_tags(real_model):
    """Greedy SmolLM2 writes the same reply twice; tags cut from the first reply (through its tokens) must
    split the second exactly there."""
    first = run_turn(real_model, ASK, SamplingParams(max_tokens=24))
    text = first.text.lstrip()
    assert len(text) > 12 and first.metrics.output_tokens > 6, text
    opening, closing = text[:3], text[len(text) // 2:len(text) // 2 + 3]
    end = text.find(closing, 3)  # the thinking ends at the closing tag's first place after the opening one
    second = rerun_with_tags(real_model, (opening, closing))
    assert (second.thinking, second.text) == (text[3:end], text[end + 3:])
    check_split(first, second)


def test_real_prompt_that_ends_with_the_opening_tag_starts_in_thinking(real_model):
    """SmolLM2's chat template ends the prompt with "assistant" (then a newline): taken as the opening tag,
    the reply starts in thinking, as a template that opens ``<think>`` for the model makes it."""
    first = run_turn(real_model, ASK, SamplingParams(max_tokens=24))
    text = first.text
    closing = text[len(text) // 2:len(text) // 2 + 3]
    end = text.find(closing)
    second = rerun_with_tags(real_model, ("assistant", closing))
    assert (second.thinking, second.text) == (text[:end], text[end + 3:])
    check_split(first, second)


# ---- the app -------------------------------------------------------------------------------------------

async def test_meter_shows_thinking_then_ttfa_and_the_chat_keeps_the_thinking_collapsed(tmp_path):
    from textual.widgets import Collapsible, Static

    from taskclock.tui.widgets.conversation import ReplyThinking, ThinkingText
    from taskclock.tui.widgets.meter import Meter

    thinking = ["Hmm", "[b]not", "markup[/b]"] + ["step"] * 57  # 1.5 s of thinking at 40 tok/s
    app = make_app(tmp_path, loader=scripted_loader(pace_tps=40, tokens=6, thinking=thinking), max_tokens=200)
    async with app.run_test(size=(130, 38)) as pilot:
        chat = await ready(pilot)
        meter = app.query_one(Meter)
        await send(pilot, "Think first.")
        await wait_for(pilot, lambda: "thinking…" in meter.values, "the meter's thinking state")
        assert str(meter.query_one("#meter-state", Static).content) == "thinking" and meter.values["TTFA"] == "…"
        seconds = float(meter.values["thinking…"].removesuffix(" s"))
        assert seconds >= 0
        await wait_for(pilot, lambda: "thinking…" in meter.values and
                       float(meter.values["thinking…"].removesuffix(" s")) > seconds, "the thinking time to count up")
        await wait_for(pilot, lambda: chat.last_result is not None and not chat.running, "the reply")
        await settle(pilot)
        result = chat.last_result
        assert result.metrics.thinking_tokens == len(thinking) and result.metrics.answer_tokens == 6
        assert meter.values["TTFA"] == f"{result.metrics.ttfa_s:.3f} s"
        assert meter.values["thinking tokens"] == str(len(thinking))
        shown = chat.query_one(ReplyThinking)
        assert isinstance(shown, Collapsible) and shown.collapsed
        assert shown.query_one(ThinkingText).content == " ".join(thinking)  # "[b]" shown as it is, not markup
        assert chat.query_one("ReplyMarkdown").source == result.text and "step" not in result.text
        assert chat.messages[-1] == {"role": "assistant", "content": result.text}  # thinking is not history
        chat.action_regenerate()  # a retry takes the old reply away, its thinking included
        await wait_for(pilot, lambda: chat.last_result is not result and not chat.running, "the retried reply")
        await settle(pilot)
        assert len(chat.query(ReplyThinking)) == 1



# ---- the figures reach session logs, exports, bench rows and replays ----------------------------------------

def test_thinking_figures_reach_logs_exports_rows_and_replays(scripted_server, tmp_path):
    from taskclock.runtime import sessions
    from taskclock.runtime.replay import recording_from_record

    scripted_server.script = thinking_script(THINKING, ANSWER, 0.02)
    result = run_turn(scripted(scripted_server), ASK, SamplingParams(max_tokens=64))
    log = sessions.SessionLog(tmp_path, "scripted")
    log.append(sessions.turn_record(result))
    (record,) = sessions.read_session(log.path)
    assert record["reply"] == "".join(ANSWER) and record["thinking"] == "".join(THINKING)
    assert record["ttfa_s"] == result.metrics.ttfa_s and record["thinking_tokens"] == 6
    (columns,) = csv.DictReader(io.StringIO(sessions.to_csv([record])))
    assert (columns["thinking_tokens"], columns["answer_tokens"]) == ("6", "4") and columns["ttfa_s"]

    row = bench.make_row(ModelSpec("scripted", "http", "x"), BUILTIN["mc"], QUESTION, result.events, 1)
    assert {"thinking_tokens", "answer_tokens", "thinking_words", "thinking_s", "ttfa_s"} <= row.keys()
    (exported,) = csv.DictReader(io.StringIO(summary.results_csv([row])))
    assert (exported["thinking_tokens"], exported["answer_tokens"]) == ("6", "4") and exported["ttfa_s"]

    for recorded in (record, row):  # the replay tells thinking from answer again, figures as recorded
        replayed = metrics.compute(recording_from_record(recorded, "again").schedule)
        assert (replayed.thinking_tokens, replayed.answer_tokens) == (6, 4)
        assert replayed.ttfa_s == pytest.approx(recorded["ttfa_s"], abs=2e-6)
        assert replayed.thinking_s == pytest.approx(recorded["thinking_s"], abs=2e-6)
