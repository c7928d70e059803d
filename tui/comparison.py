"""The comparison table (rich), shared by `taskclock compare` and the Compare tab."""
from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from taskclock.runtime.compare import COLUMNS, Comparison
from taskclock.runtime.sessions import stop_word
from taskclock.runtime.untrusted import safe_line

WINNER = "★"
MODEL_MIN_WIDTH = 24  # longer names may still be shortened (…) on a narrow terminal


def mode_line(concurrent: bool) -> str:
    if concurrent:
        return "CONCURRENT: all models ran at once, sharing the machine, so each one's figures include the others' load"
    return "sequential: one model at a time, so no model slowed another"


LEGEND = (f"{WINNER} best: lowest {', '.join(c.header for c in COLUMNS if c.better == 'low')}; "
          f"highest {', '.join(c.header for c in COLUMNS if c.better == 'high')}")


def comparison_table(comparison: Comparison) -> Table:
    """A row per model; the winner of each column is marked ★ (lowest times/tokens/words, highest rates)."""
    winners = comparison.winners()
    table = Table(title="taskclock compare", caption=f"{LEGEND}\n{mode_line(comparison.concurrent)}",
                  caption_justify="left", box=box.SIMPLE_HEAD)
    rows = comparison.rows()
    longest = max((len(safe_line(row["model"])) for row in rows), default=0)
    table.add_column("model", min_width=min(longest, MODEL_MIN_WIDTH))  # a narrow table squeezes the figures first
    for column in COLUMNS:
        table.add_column(f"{column.short or column.label}\n{column.unit}".rstrip(), justify="right")
    table.add_column("stop")
    for row in rows:
        backend = f"{row['backend']} · cold" if row["cold"] else row["backend"]
        cells: list[Text | str] = [Text.assemble(safe_line(row["model"]), "\n", (safe_line(backend), "dim"))]
        for column in COLUMNS:
            text = column.text(row[column.key])
            if row["model"] in winners[column.key]:
                cells.append(Text(f"{WINNER} {text}", style="bold green"))
            else:
                cells.append(text)
        stop = stop_word(row["stop_reason"]) or "—"
        if row["cut_replies"]:  # its task time is a lower bound: said where the figure is
            cells.append(Text(f"cut {row['cut_replies']}/{row['repeats']}", style="bold yellow"))
        else:
            cells.append(Text(stop, style="red") if stop == "error" else stop)
        table.add_row(*cells)
    return table
