"""Session logs: one JSONL file per chat session, one record per completed turn, and their exports.

A record is the one turn record (runtime/record.py: the figures, and the per-token arrival offsets and counts,
so every metric can be recomputed later from the log alone) with the session's context beside it. Records are
appended with runtime.storage (a crash loses at most the turn in progress); exports are written whole with
write_atomic.
"""
from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import metrics, storage, tables
from .errors import DataError
from .record import METRIC_KEYS, is_turn, read_turn, turn_fields
from .runfolder import RESULTS_FILE, ROW_KINDS
from .turn import TurnResult
from .untrusted import csv_row, redact, safe_line

SUFFIX = ".jsonl"
EXPORT_TAG = ".export"  # exports sit beside their log as NAME.export.FORMAT and are not sessions themselves
EXPORT_FORMATS = ("csv", "md", "jsonl")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def turn_record(result: TurnResult, kind: str = "chat", **extra: Any) -> dict[str, Any]:
    """The JSON line for one turn; ``kind`` says which view produced it ("chat", "compare"...)."""
    return {
        "kind": kind,
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        **turn_fields(redact(result.model), result.backend, result.events),
        "prompt": result.messages[-1]["content"] if result.messages else "",
        "messages": result.messages,
        "params": asdict(result.params),
        "cold": result.cold,
        **extra,
    }


def session_start(path: Path) -> str:
    """The start time a session's file name begins with (see session_file_name), as "YYYY-MM-DD HH:MM"."""
    try:
        return datetime.strptime(path.name[:15], "%Y%m%d-%H%M%S").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def session_file_name(started: datetime, model: str) -> str:
    """Start time first so a folder listing sorts by time; the model name made safe for any filesystem."""
    safe_model = _UNSAFE.sub("_", Path(model).name if model.endswith(".gguf") else model).strip("_") or "model"
    return f"{started:%Y%m%d-%H%M%S}-{safe_model}{SUFFIX}"


class SessionLog:
    """The log of one chat session; the file appears with its first turn, so empty sessions leave nothing."""

    def __init__(self, folder: Path, model: str, started: datetime | None = None) -> None:
        self.folder = Path(folder)
        self.model = model
        self.started = started or datetime.now()
        self.path = self.folder / session_file_name(self.started, model)
        self._created = False

    def append(self, record: dict[str, Any]) -> None:
        """Raises StorageError naming the folder or file when it cannot be written."""
        if not self._created:
            storage.ensure_dir(self.folder)
            self.path = storage.create_new(self.path)  # another session may have taken the name this second
            self._created = True
        storage.append(self.path, record)


def read_session(path: Path, *, bench_rows: bool = False) -> list[dict[str, Any]]:
    """The turn records of a session log (chat, compare, import), in order and in the current layout
    (read_turn): the one reader behind the Sessions view, exports and replay. ``bench_rows`` also takes a
    bench or sweep run's rows (a results file or its folder)."""
    path = Path(path)
    if bench_rows and path.is_dir():
        path = path / RESULTS_FILE
    what = "a session .jsonl file" + (" or a bench or sweep run folder" if bench_rows else " from the sessions folder")
    if not path.is_file():
        raise DataError(f"{safe_line(path)} does not exist", f"pass {what}")
    try:
        records = list(storage.read(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {safe_line(path)}: {safe_line(exc)}", "check the file") from None
    turns = [read_turn(r) for r in records if isinstance(r, dict) and (
        (bench_rows and r.get("kind") in ROW_KINDS) or (r.get("kind") not in ROW_KINDS and is_turn(r)))]
    if not turns:
        raise DataError(f"{safe_line(path)} is not a taskclock session log: it holds no recorded turns", f"pass {what}")
    return turns


def _median(values: list[Any]) -> float | None:
    present = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(present) if present else None


@dataclass(frozen=True)
class SessionSummary:
    path: Path
    model: str
    turns: int
    median_ttft_s: float | None
    median_decode_tps: float | None
    median_task_time_s: float | None
    started: str = ""  # when the session began, "YYYY-MM-DD HH:MM" (from its file name); "" if not named so
    first_prompt: str = ""
    compares: int = 0  # a Compare tab log: its trials (several models, one prompt each), not turns of a chat
    model_count: int = 1

    @property
    def size(self) -> str:
        """A chat's turn count; a compare log says so and counts its trials and models instead."""
        if not self.compares:
            return str(self.turns)
        trials = "compare" if self.compares == 1 else f"{self.compares} compares"
        return f"{trials} · {plural(self.model_count, 'model')}"


def is_compare(turns: list[dict[str, Any]]) -> bool:
    """A Compare tab log (runtime/compare.py session_records): models side by side, not a conversation."""
    return bool(turns) and all(t.get("kind") == "compare" for t in turns)


def summarize(path: Path) -> SessionSummary:
    turns = read_session(path)
    models = sorted({t.get("model", "?") for t in turns})
    return SessionSummary(
        path=Path(path),
        model=", ".join(models) or "?",
        model_count=len(models),
        compares=len({t.get("compare_id") for t in turns}) if is_compare(turns) else 0,
        turns=len(turns),
        median_ttft_s=_median([t.get("ttft_s") for t in turns]),
        median_decode_tps=_median([t.get("decode_tps") for t in turns]),
        median_task_time_s=_median([t.get("task_time_s") for t in turns]),
        started=session_start(Path(path)),
        first_prompt=str(turns[0].get("prompt", "")) if turns else "",
    )


STOP_WORDS = {"cancelled": "stopped"}  # one word for a reply the user stopped, wherever one is shown


def stop_word(reason: str | None) -> str | None:
    return STOP_WORDS.get(reason, reason) if reason else reason


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def list_sessions(folder: Path) -> list[SessionSummary]:
    """Every readable session in a folder, newest first; unreadable files are left out, not fatal."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    summaries = []
    for path in sorted(folder.glob(f"*{SUFFIX}"), reverse=True):
        if path.stem.endswith(EXPORT_TAG):
            continue
        try:
            summaries.append(summarize(path))
        except DataError:
            continue
    return summaries


METRIC_COLUMNS = METRIC_KEYS
TURN_COLUMNS = ("turn", "time", "kind", "model", "backend", "prompt", "reply", "error")


def _row(number: int, turn: dict[str, Any]) -> dict[str, Any]:
    row = {key: turn.get(key) for key in TURN_COLUMNS}
    row["turn"] = number
    row.update({key: turn.get(key) for key in METRIC_COLUMNS})
    return row


def _rounded(key: str, value: Any) -> Any:
    """CSV figures to a sensible precision: ms to 0.1, s to 3 decimals, rates to 2."""
    if not isinstance(value, float):
        return value
    return round(value, 1 if key.endswith("_ms") else 3 if key.endswith("_s") else 2)


def to_csv(turns: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*TURN_COLUMNS, *METRIC_COLUMNS],
                            lineterminator="\r\n")  # RFC 4180: a cell holding a CR is then quoted too
    writer.writeheader()
    for number, record in enumerate(turns, 1):
        writer.writerow(csv_row({key: _rounded(key, value) for key, value in _row(number, record).items()}))
    return out.getvalue()


# The markdown table's figures, as the figure registry heads and writes them.
MARKDOWN_FIGURES = tuple(metrics.figure_format(key) for key in (
    "ttft_s", "decode_tps", "e2e_tps", "task_time_s", "output_tokens", "output_words", "itl_p50_ms", "itl_p99_ms"))


def to_markdown(turns: list[dict[str, Any]], title: str = "taskclock session") -> str:
    """A summary table of every turn, then each prompt and reply."""
    rows = []
    for number, turn in enumerate(turns, 1):
        row = _row(number, turn)
        row["stop_reason"] = stop_word(row["stop_reason"])
        cells = [metrics.figure(row["model"]), *(shown.text(row[shown.key]) for shown in MARKDOWN_FIGURES),
                 metrics.figure(row["stop_reason"])]
        rows.append([str(number), *(cell.replace("\n", " ") for cell in cells)])
    lines = [f"# {title}", "", f"{plural(len(turns), 'turn')}.", "",
             tables.md_table(["turn", "model", *(shown.header for shown in MARKDOWN_FIGURES), "stop"], rows)]
    for number, turn in enumerate(turns, 1):
        lines += ["", f"## Turn {number} ({turn.get('model', '?')})", "", "**Prompt**", "",
                  str(turn.get("prompt", "")), "", "**Reply**", "", str(turn.get("reply", ""))]
        if turn.get("error"):
            lines += ["", f"**Error:** {turn['error']}"]
    return "\n".join(lines) + "\n"


def ttft_per_turn(turns: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(turn number, TTFT s) for the turns that have a first token."""
    return [(number, t["ttft_s"]) for number, t in enumerate(turns, 1) if t.get("ttft_s") is not None]


def plot_ttft_per_turn(plt, turns: list[dict[str, Any]]) -> None:
    """TTFT against turn number (plotext API): in a chat each turn prefills the whole history again, so
    the wait before the first token grows with the conversation while tokens/s says nothing of it."""
    plt.clear_data()
    points = ttft_per_turn(turns)
    if points:
        numbers = [n for n, _ in points]
        plt.plot(numbers, [s for _, s in points], marker="dot")
        if len(numbers) <= 20:
            plt.xticks(numbers)  # whole turns, not 1.5
    plt.title("TTFT per turn")
    plt.xlabel("turn")
    plt.ylabel("TTFT s")


def to_jsonl(turns: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(t, ensure_ascii=False, separators=(",", ":")) + "\n" for t in turns)


RENDERERS: dict[str, Callable[[list[dict[str, Any]]], str]] = {"csv": to_csv, "md": to_markdown, "jsonl": to_jsonl}


def export_session(path: Path, fmt: str, out: Path | None = None, *, replace: bool = False) -> Path:
    """Write one export of a session log (default: beside it, same stem); returns where it went. An existing
    file is replaced only with ``replace`` (and only a regular file, never a link or a device)."""
    if fmt not in RENDERERS:
        raise DataError(f"unknown export format {fmt!r}", f"use one of: {', '.join(EXPORT_FORMATS)}")
    path = Path(path)
    target = Path(out) if out else path.with_name(f"{path.stem}{EXPORT_TAG}.{fmt}")
    if target.resolve() == path.resolve():
        raise DataError(f"exporting {path} onto itself", "choose another output file with -o")
    storage.write_atomic(target, RENDERERS[fmt](read_session(path)), replace=replace)
    return target


def export_all(path: Path) -> list[Path]:
    """Every format beside the log: what the app's export key writes (again after more turns, so it replaces
    its own earlier exports)."""
    return [export_session(path, fmt, replace=True) for fmt in EXPORT_FORMATS]
