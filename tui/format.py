"""Human formatting of figures and outside text, shared by the CLI and the app (every figure is written by the
one formatter, runtime/metrics.py ``figure``)."""
from __future__ import annotations

import re
import textwrap
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text

from taskclock.runtime.metrics import FigureFormat, figure, figure_formats
from taskclock.runtime.untrusted import safe_line, safe_text

if TYPE_CHECKING:
    from rich.table import Table


def plain(text: object, *, one_line: bool = True, style: str = "") -> Text:
    """Outside text (names, paths, errors, replies) for a widget or a Rich table: a Text object, so it is never
    parsed as markup, with its control codes made visible."""
    return Text(safe_line(text) if one_line else safe_text(text), style=style, end="")




# Silent reading of English non-fiction: 238 words a minute, ~4 words/s (Brysbaert 2019; docs/METRICS.md).
READING_WPS = 4.0


def with_reading(words_per_s: float | None) -> str:
    """words/s with whether the stream outpaces a reader."""
    if words_per_s is None:
        return figure(None)
    pace = ">" if words_per_s > READING_WPS else "<"
    return f"{words_per_s:.1f} ({pace} reading ~{READING_WPS:g})"


def reply_line(values: dict[str, Any], cold: bool) -> str:
    """The one-line figures kept under a finished chat reply."""
    thought = ([f"TTFA {figure(values.get('ttfa_s'), 3, 's')}",
                f"{figure(values.get('thinking_tokens'))} thinking tokens"]
               if values.get("thinking_tokens") is not None else [])
    parts = [f"TTFT {figure(values.get('ttft_s'), 3, 's')}", *thought, figure(values.get("decode_tps"), 1, "tok/s"),
             f"task {figure(values.get('task_time_s'), 3, 's')}", f"{figure(values.get('output_tokens'))} tokens",
             f"{figure(values.get('output_words'))} words"]
    return " · ".join(parts + (["cold"] if cold else []))


def shown_lines(values: dict[str, Any]) -> list[FigureFormat]:
    """Every per-turn figure (the figure registry, runtime/metrics.py) in display order; an optional one (load
    time on the first turn after a load, GPU figures on CUDA) only when the turn has it."""
    return [shown for shown in figure_formats() if not (shown.optional and values.get(shown.key) is None)]


def metrics_block(values: dict[str, Any], cold: bool = False) -> str:
    """The block `taskclock run` prints after the reply, like `ollama run --verbose`; a cold turn (the model's
    first since it loaded, docs/METRICS.md) says so, as the app's reply line does."""
    lines = [(shown.label, shown.text(values.get(shown.key), unit=True)) for shown in shown_lines(values)]
    if cold:
        lines.append(("turn", "cold (the model's first since it loaded)"))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label + ':':<{width + 1}} {text}" for label, text in lines)


def figure_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Text]], *, names: Collection[int],
                 left: Collection[int] = (), styles: Sequence[str | None] | None = None) -> Table:
    """A console table whose figures are never split, even at 80 columns: the name columns (``names``: model,
    task) fold when space runs short; every other column never wraps, and its header is wrapped at spaces to
    the width of its widest cell (so a long header costs no width). Figures right-aligned, names and ``left``
    columns left-aligned."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=0)
    for i, header in enumerate(headers):
        widest = max((cell_len(line) for row in rows for line in row[i].plain.split("\n")), default=0)
        if i in names:
            table.add_column(header, justify="left", overflow="fold")
        else:
            words = max((len(word) for word in header.split()), default=0)
            shown = textwrap.fill(header, max(widest, words), break_long_words=False, break_on_hyphens=False)
            table.add_column(shown, justify="left" if i in left else "right", no_wrap=True)
    for n, row in enumerate(rows):
        table.add_row(*row, style=styles[n] if styles else None)
    return table


_FENCE = re.compile(r"(`{3,}|~{3,})(.*)")


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of a Markdown reply (``` or ~~~, CommonMark's rule for the closing fence), in order;
    a block the reply was cut off inside (max tokens) runs to its end."""
    blocks: list[str] = []
    fence, lines = "", []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if len(line) - len(stripped) > 3:
            if fence:
                lines.append(line)
            continue
        if not fence:
            opening = _FENCE.match(stripped)
            if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
                fence, lines = opening.group(1), []
        elif stripped.rstrip().startswith(fence) and set(stripped.rstrip()) == {fence[0]}:
            blocks.append("\n".join(lines))
            fence = ""
        else:
            lines.append(line)
    if fence and lines:
        blocks.append("\n".join(lines))
    return blocks
