"""Human formatting of metric values, shared by the CLI and the app."""
from __future__ import annotations

from typing import Any

from rich.text import Text

from taskclock.runtime.metrics import figure_formats
from taskclock.runtime.untrusted import safe_line, safe_text


def plain(text: object, *, one_line: bool = True) -> Text:
    """Outside text (names, paths, errors, replies) for a widget or a Rich table: a Text object, so it is never
    parsed as markup, with its control codes made visible."""
    return Text(safe_line(text) if one_line else safe_text(text), end="")


def fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    """A figure with its unit, or an em dash where the figure is undefined (never a fake zero)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


# (label, key, unit, digits) for every per-turn figure: declared once, on TurnMetrics (runtime/metrics.py).
METRIC_LINES = tuple((f.label, f.key, f.unit, f.digits) for f in figure_formats())
# Shown only when the turn has them: load time on the first turn after a load, GPU figures on CUDA.
OPTIONAL_KEYS = frozenset(f.key for f in figure_formats() if f.optional)


def shown_lines(values: dict[str, Any]):
    return [line for line in METRIC_LINES if not (line[1] in OPTIONAL_KEYS and values.get(line[1]) is None)]


def metrics_block(values: dict[str, Any]) -> str:
    """The block `taskclock run` prints after the reply, like `ollama run --verbose`."""
    lines = shown_lines(values)
    width = max(len(label) for label, *_ in lines)
    return "\n".join(f"{label + ':':<{width + 1}} {fmt(values.get(key), unit, digits)}"
                     for label, key, unit, digits in lines)
