"""StreamingText: what an append-only repaint shows must equal wrapping the whole text at once."""
from __future__ import annotations

import random

from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult

from taskclock.tui.widgets.streaming_text import PLACEHOLDER, StreamingText

WIDTH, STEP = 24, 4


class OneText(App):
    CSS = f"StreamingText {{ width: {WIDTH}; }}"

    def compose(self) -> ComposeResult:
        yield StreamingText(grow_step=STEP)


def shown_lines(widget: StreamingText) -> list[str]:
    return [widget.render_line(y).text.rstrip() for y in range(widget.size.height)]


def wrapped_at_once(text: str) -> list[str]:
    return [line.plain.rstrip() for line in Text(text).wrap(Console(), WIDTH, overflow="fold")]


def chunks_of(text: str, seed: int) -> list[str]:
    """Token-like pieces of random lengths, so words, spaces and newlines fall at every kind of boundary."""
    rng, pieces, at = random.Random(seed), [], 0
    while at < len(text):
        size = rng.randint(1, 7)
        pieces.append(text[at:at + size])
        at += size
    return pieces


TEXT = ("Task time is what you wait for.\nA model that says less can finish first,\n\neven at a lower rate "
        "of tokens per second. Averyveryverylongwordthatmustfoldacrosslines ends here.\n")


async def test_appending_piece_by_piece_shows_the_same_lines_as_wrapping_the_whole_text():
    for seed in range(3):
        app = OneText()
        async with app.run_test(size=(60, 40)) as pilot:
            widget = app.query_one(StreamingText)
            shown = ""
            for piece in chunks_of(TEXT, seed):
                widget.append(piece)
                shown += piece
                await pilot.pause()
                expected = wrapped_at_once(shown)
                lines = shown_lines(widget)
                assert lines[:len(expected)] == expected, (seed, shown)
                assert not any(lines[len(expected):])  # the rest of the step is blank
            assert widget.text == TEXT


async def test_height_grows_in_steps_while_streaming_and_fits_once_settled():
    app = OneText()
    async with app.run_test(size=(60, 40)) as pilot:
        widget = app.query_one(StreamingText)
        heights = set()
        for piece in chunks_of(TEXT, 7):
            widget.append(piece)
            await pilot.pause()
            assert widget.size.height % STEP == 0
            assert widget.size.height >= widget.line_count
            heights.add(widget.size.height)
        assert len(heights) < widget.line_count  # fewer re-layouts than lines
        widget.settle()
        await pilot.pause()
        assert widget.size.height == widget.line_count == len(wrapped_at_once(TEXT))


async def test_empty_shows_a_placeholder_and_clear_starts_over():
    app = OneText()
    async with app.run_test(size=(60, 40)) as pilot:
        widget = app.query_one(StreamingText)
        await pilot.pause()
        assert shown_lines(widget)[0] == PLACEHOLDER
        widget.append("first\nreply")
        widget.settle()
        await pilot.pause()
        widget.clear()
        widget.append("second")
        await pilot.pause()
        assert widget.text == "second"
        assert shown_lines(widget) == ["second"] + [""] * (STEP - 1)


async def test_a_resize_rewraps_everything_at_the_new_width():
    app = OneText()
    async with app.run_test(size=(60, 40)) as pilot:
        widget = app.query_one(StreamingText)
        widget.append(TEXT)
        await pilot.pause()
        widget.styles.width = WIDTH // 2
        await pilot.pause()
        expected = [line.plain.rstrip() for line in Text(TEXT).wrap(Console(), WIDTH // 2, overflow="fold")]
        assert shown_lines(widget)[:len(expected)] == expected


async def test_show_appends_what_extends_the_text_and_starts_over_otherwise():
    app = OneText()
    async with app.run_test(size=(60, 40)) as pilot:
        widget = app.query_one(StreamingText)
        widget.show("Task time is")
        widget.show("Task time is what you wait for.")
        await pilot.pause()
        assert shown_lines(widget)[:2] == wrapped_at_once("Task time is what you wait for.")
        widget.show("(no output)")  # not an extension: the shown text is replaced, not appended to
        await pilot.pause()
        assert widget.text == "(no output)"
        assert shown_lines(widget)[0] == "(no output)" and not any(shown_lines(widget)[1:])
