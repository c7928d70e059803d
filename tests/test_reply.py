"""The end of a turn, shared by every backend: held-back text, counts and the stop reason's precedence."""
from taskclock.runtime.events import Done, Token
from taskclock.runtime.reply import Reply
from taskclock.runtime.textstream import ByteDetokenizer

# "é" is two UTF-8 bytes; token 2 carries only its first byte, as byte-level vocabularies do.
PIECES = {1: b"caf", 2: b"\xc3", 3: b"\xa9", 4: b" END", 5: b"!"}


def byte_reply(stop: tuple[str, ...] = ()) -> Reply:
    return Reply(stop, ByteDetokenizer(PIECES.__getitem__))


def shown(events: list[Token]) -> str:
    """The text of a token's one event (a reply without thinking tags gives one event per token)."""
    (event,) = events
    return event.text


def test_split_character_is_held_then_released_whole():
    reply = byte_reply()
    texts = [shown(reply.token(i, tok)) for i, tok in enumerate([1, 2, 3])]
    assert texts == ["caf", "", "é"]
    done = reply.end("length", 7)[-1]
    assert isinstance(done, Done) and (done.stop_reason, done.input_tokens, done.output_tokens) == ("length", 7, 3)


def test_text_held_for_a_stop_string_is_released_when_the_turn_ends_otherwise():
    reply = byte_reply(stop=(" ENDING",))
    assert shown(reply.token(0, 4)) == ""  # " END" might start " ENDING"
    tail, done = reply.end("eos", 2, extra={"batch_size": 2})
    assert isinstance(tail, Token) and tail.text == " END" and tail.count == 0
    assert isinstance(done, Done) and done.stop_reason == "eos" and done.extra == {"batch_size": 2}


def test_a_stop_string_wins_over_the_backend_reason_and_its_text_is_dropped():
    reply = byte_reply(stop=("END",))
    assert shown(reply.token(0, 4)) == " " and reply.stopped
    events = reply.end("length", 1)
    assert len(events) == 1 and isinstance(events[0], Done) and events[0].stop_reason == "stop"


def test_an_error_wins_and_keeps_the_count():
    reply = byte_reply()
    reply.token(0, 1)
    done = reply.end("cancelled", 1, error="generation failed: boom")[-1]
    assert isinstance(done, Done) and (done.stop_reason, done.output_tokens) == ("error", 1)
    assert done.error == "generation failed: boom"


def test_text_chunk_replies_report_the_servers_count_or_none():
    assert Reply(()).end("eos", None)[-1].output_tokens is None
    assert Reply(()).end("eos", 3, 9)[-1].output_tokens == 9
