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
from .errors import DataError, TaskclockError
from .record import METRIC_KEYS, is_turn, read_turn, turn_fields
from .runfolder import RESULTS_FILE, ROW_KINDS
from .turn import TurnResult
from .untrusted import csv_row, redact, safe_line

SUFFIX = ".jsonl"
EXPORT_TAG = ".export"  # exports sit beside their log as NAME.export.FORMAT and are not sessions themselves
EXPORT_FORMATS = ("csv", "md", "jsonl")
TITLE_KIND = "title"  # a line naming the session (rename): appended like a turn, so the log stays append-only
TITLE_LIMIT = 120
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
    """The log of one chat session; the file appears with its first turn, so empty sessions leave nothing.

    ``branch_of`` names where a branch started ({"session": file name, "turn": number}): its first record says so,
    and the session it came from is left as it was."""

    def __init__(self, folder: Path, model: str, started: datetime | None = None,
                 branch_of: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.model = model
        self.started = started or datetime.now()
        self.path = self.folder / session_file_name(self.started, model)
        self.branch_of = branch_of
        self._created = False

    def append(self, record: dict[str, Any]) -> None:
        """Raises StorageError naming the folder or file when it cannot be written."""
        if not self._created:
            storage.ensure_dir(self.folder)
            self.path = storage.create_new(self.path)  # another session may have taken the name this second
            self._created = True
            if self.branch_of:
                record = {**record, "branch_of": self.branch_of}
        storage.append(self.path, record)


def rename_session(path: Path, title: str) -> str:
    """Name a session (an empty title takes the name away): a title line appended to its log, the last one wins.
    Returns the title as kept. Raises DataError (no such log) or StorageError."""
    kept = safe_line(title)[:TITLE_LIMIT]
    if not Path(path).is_file():
        raise DataError(f"{safe_line(path)} does not exist", "refresh the list (r)")
    storage.append(Path(path), {"kind": TITLE_KIND, "time": datetime.now().astimezone().isoformat(timespec="seconds"),
                                "title": kept})
    return kept


def read_session(path: Path, *, bench_rows: bool = False) -> list[dict[str, Any]]:
    """The turn records of a session log (chat, compare, import), in order and in the current layout
    (read_turn): the one reader behind the Sessions view, exports and replay. ``bench_rows`` also takes a
    bench or sweep run's rows (a results file or its folder)."""
    path = Path(path)
    if bench_rows and path.is_dir():
        path = path / RESULTS_FILE
    what = "a session .jsonl file" + (" or a bench or sweep run folder" if bench_rows else " from the sessions folder")
    return _turns(path, _records(path), what, bench_rows)


def _turns(path: Path, records: list[dict[str, Any]], what: str, bench_rows: bool = False) -> list[dict[str, Any]]:
    turns = [read_turn(r) for r in records if (bench_rows and r.get("kind") in ROW_KINDS)
             or (r.get("kind") not in ROW_KINDS and is_turn(r))]
    if not turns:
        raise DataError(f"{safe_line(path)} is not a taskclock session log: {_holds(records)}", f"pass {what}")
    return turns


def _records(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON object in a log, whatever its kind, read through the outside-file gate; damaged
    lines are skipped, as a torn last one is."""
    return [r for r in storage.read(path, "session log") if isinstance(r, dict)]


def _holds(records: list[dict[str, Any]]) -> str:
    """Why a file has no turn to show: what its lines are instead."""
    if not records:
        return "it holds no complete JSON line"
    kinds = sorted({safe_line(r.get("kind", "?"))[:20] for r in records})
    return f"none of its {plural(len(records), 'record')} is a recorded turn (kinds: {', '.join(kinds)})"


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
    title: str = ""  # the name given with rename ("" until renamed)
    prompts: tuple[str, ...] = ()  # every turn's prompt, for search
    models: tuple[str, ...] = ()  # each model that answered, for the model filter

    @property
    def label(self) -> str:
        """What the Sessions list calls it: its name, else its first prompt."""
        return self.title or self.first_prompt

    def matches(self, query: str = "", model: str = "") -> bool:
        """Search and filter: every word of ``query`` in its name or one of its prompts (any case), and ``model``
        ("" for any) among its models."""
        text = "\n".join((self.title, *self.prompts)).casefold()
        return all(word in text for word in query.casefold().split()) and (not model or model in self.models)

    @property
    def size(self) -> str:
        """A chat's turn count; a compare log says so and counts its trials and models instead."""
        if not self.compares:
            return str(self.turns)
        trials = "compare" if self.compares == 1 else f"{self.compares} compares"
        return f"{trials} · {plural(self.model_count, 'model')}"

    @property
    def short_size(self) -> str:
        """``size`` in at most six characters, for a narrow list (its model column names the models)."""
        if not self.compares:
            return str(self.turns)
        return "cmp" if self.compares == 1 else f"cmp×{self.compares}"


def is_compare(turns: list[dict[str, Any]]) -> bool:
    """A Compare tab log (runtime/compare.py session_records): models side by side, not a conversation."""
    return bool(turns) and all(t.get("kind") == "compare" for t in turns)


def summarize(path: Path) -> SessionSummary:
    records = _records(Path(path))
    turns = _turns(Path(path), records, "a session .jsonl file from the sessions folder")
    models = sorted({str(t.get("model", "?")) for t in turns})
    titles = [r.get("title") for r in records if r.get("kind") == TITLE_KIND and isinstance(r.get("title"), str)]
    return SessionSummary(
        path=Path(path),
        model=", ".join(models) or "?",
        title=safe_line(titles[-1])[:TITLE_LIMIT] if titles else "",
        prompts=tuple(str(t.get("prompt", "")) for t in turns),
        models=tuple(models),
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
        if is_export(path):
            continue
        try:
            summaries.append(summarize(path))
        except TaskclockError:  # one unreadable log never hides the others
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


def _shown(text: object, limit: int | None) -> str:
    text = str(text)
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}\n\n*… {len(text) - limit:,} more characters (the export holds them all)*"


def to_markdown(turns: list[dict[str, Any]], title: str = "taskclock session", *, first: int = 1,
                text_limit: int | None = None) -> str:
    """A summary table of every turn, then each prompt and reply. The app's viewer shows a page at a time:
    ``first`` numbers the page's first turn and each text is cut at ``text_limit`` characters (the export: whole)."""
    rows = []
    for number, turn in enumerate(turns, first):
        row = _row(number, turn)
        row["stop_reason"] = stop_word(row["stop_reason"])
        cells = [metrics.figure(row["model"]), *(shown.text(row[shown.key]) for shown in MARKDOWN_FIGURES),
                 metrics.figure(row["stop_reason"])]
        rows.append([str(number), *(cell.replace("\n", " ") for cell in cells)])
    lines = [f"# {title}", "", f"{plural(len(turns), 'turn')}.", "",
             tables.md_table(["turn", "model", *(shown.header for shown in MARKDOWN_FIGURES), "stop"], rows)]
    for number, turn in enumerate(turns, first):
        lines += ["", f"## Turn {number} ({turn.get('model', '?')})", "", "**Prompt**", "",
                  _shown(turn.get("prompt", ""), text_limit), "", "**Reply**", "",
                  _shown(turn.get("reply", ""), text_limit)]
        if turn.get("error"):
            lines += ["", f"**Error:** {_shown(turn['error'], text_limit)}"]
    return "\n".join(lines) + "\n"


def ttft_per_turn(turns: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(turn number, TTFT s) for the turns that have a first token."""
    return [(number, t["ttft_s"]) for number, t in enumerate(turns, 1) if t.get("ttft_s") is not None]


def turn_number(turns: list[dict[str, Any]], history: list[dict[str, str]], prompt: str) -> int | None:
    """The number of the last turn that asked ``prompt`` after ``history`` (its conversation, system prompt
    aside), or None: where an edited earlier prompt branches off."""
    asked = [*history, {"role": "user", "content": prompt}]
    found = [number for number, turn in enumerate(turns, 1)
             if [m for m in turn.get("messages") or [] if isinstance(m, dict) and m.get("role") != "system"] == asked]
    return found[-1] if found else None


def _system_prompt(turn: dict[str, Any]) -> str:
    messages = turn.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    return str(first.get("content", "")) if isinstance(first, dict) and first.get("role") == "system" else ""


def context_changes(turns: list[dict[str, Any]]) -> dict[int, str]:
    """Turn number → what changed just before it that made it read the whole conversation again: another model
    (which holds none of it in its cache) or another system prompt (which comes first, so no cached prefix is
    left). Those turns' TTFT jumps, and the TTFT chart marks them."""
    changes: dict[int, str] = {}
    for number in range(2, len(turns) + 1):
        before, turn = turns[number - 2], turns[number - 1]
        if turn.get("model") != before.get("model"):
            changes[number] = f"the model changed ({safe_line(before.get('model'))} → {safe_line(turn.get('model'))})"
        elif _system_prompt(turn) != _system_prompt(before):
            changes[number] = "the system prompt changed"
    return changes


def context_notes(turns: list[dict[str, Any]]) -> list[str]:
    """One line per marked turn saying why its wait jumped."""
    notes = []
    for number, change in context_changes(turns).items():
        tokens = turns[number - 1].get("input_tokens")
        read = f"all {tokens} input tokens" if isinstance(tokens, int) else "the whole conversation"
        why = "a new model has none of the conversation cached" if change.startswith("the model") else \
            "it comes first, so nothing cached before it still matches"
        notes.append(f"✕ turn {number}: {change}: {why}, so it read {read} again before its first token")
    return notes


def plot_ttft_per_turn(plt, turns: list[dict[str, Any]]) -> None:
    """TTFT against turn number (plotext API): in a chat each turn prefills the whole history again, so
    the wait before the first token grows with the conversation while tokens/s says nothing of it. Turns after a
    model or system-prompt change (context_changes) are marked ✕: they read everything again."""
    plt.clear_data()
    points = ttft_per_turn(turns)
    changed = context_changes(turns)
    if points:
        numbers = [n for n, _ in points]
        plt.plot(numbers, [s for _, s in points], marker="dot")
        marked = [(n, s) for n, s in points if n in changed]
        if marked:
            plt.scatter([n for n, _ in marked], [s for _, s in marked], marker="✕", color="red")
        if len(numbers) <= 20:
            plt.xticks(numbers)  # whole turns, not 1.5
    plt.title("TTFT per turn" + (" · ✕ after a model or system-prompt change" if changed else ""))
    plt.xlabel("turn")
    plt.ylabel("TTFT s")


def to_jsonl(turns: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(t, ensure_ascii=False, separators=(",", ":")) + "\n" for t in turns)


RENDERERS: dict[str, Callable[[list[dict[str, Any]]], str]] = {"csv": to_csv, "md": to_markdown, "jsonl": to_jsonl}


def export_session(path: Path, fmt: str, out: Path | None = None, *, replace: bool = False) -> Path:
    """Write one export of a session log (default: beside it, same stem); returns where it went. An existing
    file is replaced only with ``replace`` (and only a regular file, never a link or a device). The other tools'
    forms (runtime/importers.py EXPORTERS: vLLM's bench result, llama.cpp's timings) also take a bench or sweep
    run folder, whose rows are the requests (default: inside it, results.export.FORMAT)."""
    from .importers import EXPORT_SUFFIX, EXPORTERS  # the other tools' forms live beside their importers

    renderers = {**RENDERERS, **EXPORTERS}
    if fmt not in renderers:
        raise DataError(f"unknown export format {fmt!r}", f"use one of: {', '.join(renderers)}")
    path = Path(path)
    if path.is_dir() and fmt not in EXPORTERS:
        raise DataError(f"{safe_line(path)} is a run folder: --format {fmt} is for session logs",
                        f"use --format {' or '.join(EXPORTERS)}, or no --format to rewrite its own files")
    stem = f"{RESULTS_FILE.rsplit('.', 1)[0]}" if path.is_dir() else path.stem
    suffix = EXPORT_SUFFIX.get(fmt, fmt)
    target = Path(out) if out else (path if path.is_dir() else path.parent) / f"{stem}{EXPORT_TAG}.{suffix}"
    if target.resolve() == path.resolve():
        raise DataError(f"exporting {path} onto itself", "choose another output file with -o")
    turns = read_session(path, bench_rows=fmt in EXPORTERS)
    storage.write_atomic(target, renderers[fmt](turns), replace=replace)
    return target


def is_export(path: Path) -> bool:
    """An export beside a log (NAME.export.FORMAT, NAME.export.vllm.json): never a session itself."""
    return f"{EXPORT_TAG}." in Path(path).name


def export_all(path: Path) -> list[Path]:
    """Every format beside the log: what the app's export key writes (again after more turns, so it replaces
    its own earlier exports)."""
    return [export_session(path, fmt, replace=True) for fmt in EXPORT_FORMATS]
