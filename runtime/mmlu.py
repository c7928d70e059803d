"""MMLU questions: loading the CSV release and picking a stratified sample.

The release ships inside the package (``data/mmlu/mmlu.zip``, byte for byte; see its README.md), so a fresh
install needs no download. A local folder of the same CSVs or the `cais/mmlu` hub dataset (``--mmlu hub``,
the ``hub`` extra) can stand in for it. The CSV layout is the authors' original one:
``test/<subject>_test.csv`` (also under ``data/``), no header, six columns (question, A, B, C, D, answer
letter). Fields contain newlines and files mix CRLF and LF, so they are read with the csv module, never
split on lines. A malformed row is skipped and counted, never fatal.
"""
from __future__ import annotations

import csv
import importlib.resources
import importlib.util
import io
import os
import random
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path

from .errors import DataError

LETTERS = ("A", "B", "C", "D")
DEFAULT_LIMIT = 660  # the paper's sample size
HUB_DATASET = "cais/mmlu"
HUB = "hub"  # --mmlu hub: the hub dataset; stored in run.toml as "hub:cais/mmlu"
EMBEDDED = "embedded:mmlu"  # the copy inside the package: the source of runs that named no folder
EMBEDDED_ARCHIVE = "mmlu.zip"
NO_DATA_FIX = "pass --mmlu a folder holding test/<subject>_test.csv, or leave it out for the built-in copy"
MAX_CSV_BYTES = 64 << 20  # the largest MMLU subject file is about 1 MB


@dataclass(frozen=True)
class Question:
    """One MMLU item; ``id`` ("<subject>/<row index>") is stable across runs and machines."""

    subject: str
    index: int
    question: str
    choices: tuple[str, str, str, str]
    answer: str

    @property
    def id(self) -> str:
        return f"{self.subject}/{self.index}"


@dataclass
class MMLUData:
    source: str
    questions: list[Question]
    skipped: list[str] = field(default_factory=list)  # "file:row: reason", one per malformed row

    def subjects(self) -> list[str]:
        return sorted({q.subject for q in self.questions})

    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}


def resolve_path(explicit: str | None, configured: str = "") -> str | None:
    """--mmlu, then TASKCLOCK_MMLU, then config defaults.mmlu; None means "the built-in copy"."""
    return explicit or os.environ.get("TASKCLOCK_MMLU") or configured or None


def split_folder(root: Path, split: str = "test") -> Path:
    for candidate in (root / split, root / "data" / split):
        if candidate.is_dir():
            return candidate
    raise DataError(f"{root} has no {split}/ or data/{split}/ folder of MMLU CSVs", NO_DATA_FIX)


def parse_row(row: list[str], subject: str, index: int) -> tuple[Question | None, str]:
    """A Question, or None and the reason the row is malformed."""
    if len(row) != 6:
        return None, f"expected 6 fields, found {len(row)}"
    answer = row[5].strip().upper()
    if answer not in LETTERS:
        return None, f"answer {row[5]!r} is not one of A-D"
    if not row[0].strip():
        return None, "empty question"
    return Question(subject, index, row[0], (row[1], row[2], row[3], row[4]), answer), ""


def read_rows(lines: Iterable[str], name: str, subject: str, questions: list[Question], skipped: list[str]) -> None:
    """Parse one CSV file's text into ``questions``, noting malformed rows in ``skipped``."""
    for index, row in enumerate(csv.reader(lines)):
        question, reason = parse_row(row, subject, index)
        if question is None:
            skipped.append(f"{name}:{index + 1}: {reason}")
        else:
            questions.append(question)


def read_csv_file(path: Path, subject: str) -> tuple[list[Question], list[str]]:
    """The file's questions and one note per skipped row. Only a regular file of at most MAX_CSV_BYTES is read
    (a FIFO named like a CSV would block the load, a device would never end); anything else is skipped whole."""
    questions: list[Question] = []
    skipped: list[str] = []
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return [], [f"{path.name}: not a regular file; skipped"]
        if info.st_size > MAX_CSV_BYTES:
            return [], [f"{path.name}: larger than {MAX_CSV_BYTES >> 20} MiB; skipped"]
        with open(path, newline="", encoding="utf-8") as handle:
            read_rows(handle, path.name, subject, questions, skipped)
    except UnicodeDecodeError as exc:
        skipped.append(f"{path.name}: not UTF-8 (byte {exc.start}); rest of file skipped")
    except (OSError, csv.Error) as exc:
        skipped.append(f"{path.name}: unreadable ({exc}); rest of file skipped")
    return questions, skipped


def load_csv(root: Path, split: str = "test") -> MMLUData:
    if not root.exists():
        raise DataError(f"MMLU folder {root} does not exist", NO_DATA_FIX)
    folder = split_folder(root, split)
    suffix = f"_{split}.csv"
    try:
        files = sorted(folder / name for name in os.listdir(folder) if name.endswith(suffix))
    except OSError as exc:  # glob would hide a permission error as an empty folder
        raise DataError(f"cannot read the MMLU folder {folder}: {exc.strerror or exc}", "check its permissions") \
            from None
    if not files:
        raise DataError(f"{folder} holds no *{suffix} files", "point --mmlu at the MMLU data folder")
    data = MMLUData(str(root.resolve()), [])
    for path in files:
        questions, skipped = read_csv_file(path, path.name[: -len(suffix)])
        data.questions.extend(questions)
        data.skipped.extend(skipped)
    if not data.questions:
        raise DataError(f"no valid MMLU rows in {folder} ({len(data.skipped)} malformed)", "check the files")
    return data


def embedded_archive() -> Traversable:
    """The packaged zip (a real file in a checkout or an installed wheel)."""
    return importlib.resources.files("taskclock.runtime").joinpath("data", "mmlu", EMBEDDED_ARCHIVE)


def load_embedded(split: str = "test") -> MMLUData:
    """The CSV release shipped in the package: members ``<split>/<subject>_<split>.csv`` of one zip."""
    suffix = f"_{split}.csv"
    data = MMLUData(EMBEDDED, [])
    try:
        with embedded_archive().open("rb") as raw, zipfile.ZipFile(raw) as archive:
            names = sorted(n for n in archive.namelist() if n.startswith(f"{split}/") and n.endswith(suffix))
            for name in names:
                text = archive.read(name).decode("utf-8")
                subject = name[len(split) + 1: -len(suffix)]
                read_rows(io.StringIO(text, newline=""), name, subject, data.questions, data.skipped)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataError(f"the built-in MMLU copy is unreadable ({exc})", "reinstall taskclock or pass --mmlu") from None
    if not data.questions:
        raise DataError(f"the built-in MMLU copy has no {split} split", "pass --mmlu with a folder of MMLU CSVs")
    return data


def load_hub(split: str = "test") -> MMLUData:
    """cais/mmlu through `datasets` (the optional `hub` extra), for users who are online."""
    hub_fix = "install the `hub` extra and go online, or leave --mmlu out to use the built-in copy"
    if importlib.util.find_spec("datasets") is None:
        raise DataError("--mmlu hub needs the `datasets` package", hub_fix)
    import datasets

    try:
        table = datasets.load_dataset(HUB_DATASET, "all", split=split)
    except Exception:  # offline, or the hub refused: the user can always pass a folder
        raise DataError(f"could not fetch {HUB_DATASET} from the hub", hub_fix) from None
    data = MMLUData(f"hub:{HUB_DATASET}", [])
    counters: dict[str, int] = {}
    for item in table:
        subject = item["subject"]
        index = counters.get(subject, 0)
        counters[subject] = index + 1
        row = [item["question"], *item["choices"], LETTERS[item["answer"]] if 0 <= item["answer"] < 4 else "?"]
        question, reason = parse_row(row, subject, index)
        if question is None:
            data.skipped.append(f"{subject}:{index + 1}: {reason}")
        else:
            data.questions.append(question)
    return data


def load(source: str | None, split: str = "test") -> MMLUData:
    """A folder path, ``hub`` (or a run's stored ``hub:cais/mmlu``), or None / ``embedded:mmlu`` for the
    built-in copy."""
    if not source or source == EMBEDDED:
        return load_embedded(split)
    if source == HUB or source.startswith(f"{HUB}:"):
        return load_hub(split)
    return load_csv(Path(source).expanduser(), split)


def pick_subjects(data: MMLUData, subjects: Iterable[str] | None) -> list[str]:
    available = data.subjects()
    wanted = [s.strip() for s in (subjects or []) if s.strip()]
    if not wanted or wanted == ["all"]:
        return available
    if "all" in wanted:
        raise DataError("'all' cannot be combined with other subjects", "pass --subjects all, or only subject names")
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise DataError(f"unknown MMLU subject(s): {', '.join(unknown)}",
                        f"use 'all' or some of: {', '.join(available[:5])}, … ({len(available)} in all)")
    return sorted(set(wanted))


def quotas(sizes: dict[str, int], limit: int) -> dict[str, int]:
    """Proportional allocation by largest remainder; ties go to the alphabetically first subject."""
    total = sum(sizes.values())
    if limit >= total:
        return dict(sizes)
    exact = {s: limit * n / total for s, n in sizes.items()}
    counts = {s: int(v) for s, v in exact.items()}
    left = limit - sum(counts.values())
    for subject in sorted(exact, key=lambda s: (-(exact[s] - counts[s]), s))[:left]:
        counts[subject] += 1
    return counts


def select(data: MMLUData, subjects: Iterable[str] | None, limit: int, seed: int) -> list[Question]:
    """A deterministic stratified sample: each subject's share of ``limit`` follows its size, and the
    questions within a subject are drawn with a generator seeded by (seed, subject)."""
    if limit <= 0:
        raise DataError(f"--limit must be at least 1, not {limit}", "pass a positive number of questions")
    chosen = pick_subjects(data, subjects)
    pools = {s: [q for q in data.questions if q.subject == s] for s in chosen}
    counts = quotas({s: len(p) for s, p in pools.items()}, limit)
    picked: list[Question] = []
    for subject in chosen:
        rng = random.Random(f"{seed}:{subject}")
        picked.extend(sorted(rng.sample(pools[subject], counts[subject]), key=lambda q: q.index))
    return picked
