"""The allowed range of every number with a unit, and the choices of every named setting, in one place.

``SamplingParams``, ``ModelSpec`` and ``TaskSpec`` call these checks when they are built, so a value from a
config file, a run.toml, a command-line option, remembered settings or the app is refused the same way: one
``InvalidValue`` naming the key (the config loader adds the file and line). Plans (bench and sweep) are
checked by ``check_plan`` from the CLI, the Batch tab, ``prepare()`` and run.toml on resume alike. Recorded
figures (logs, imports) that fall outside ``RECORDED_MAX_S`` are damage, counted by their readers. Numbers
typed by a user are parsed as ASCII only (``parse_whole``, ``parse_number``, ``parse_counts``). See
docs/CONFIG.md for the table.
"""
from __future__ import annotations

import math
import re
from typing import Any

from .errors import ConfigError, DataError

SEED_MAX = 2**32 - 1  # what every backend's RNG accepts (numpy and llama.cpp take 32-bit seeds)
TEMPERATURE_MAX = 2.0
# Token counts (context, prompt and reply lengths): 2^24 is beyond every model's context, and small enough that
# a slip (n_ctx = 1e30) is refused at once instead of failing to allocate after 40 s.
TOKENS_MAX = 1 << 24
# Seconds: the longest a turn may be allowed (timeout_s, turn_timeout_s) or recorded (a log's or an import's
# offsets and times) to take: a day. Anything above is a typo or damage, and would overflow a clock in ns.
RECORDED_MAX_S = 86_400.0
THREADS_MAX = 4096
GPU_LAYERS_MAX = 10_000
# Pace (CLI and tab): far beyond any real server, yet small enough that the figures shown stay meaningful.
PACE_TPS_MIN = 0.01
PACE_TPS_MAX = 100_000.0
PACE_TTFT_MAX_S = 3600.0
PACE_WORDS_MAX = 5000
REPLAY_SPEED_MIN = 0.01  # replay --speed: slower than a hundredth of the recorded pace is not a replay
REPLAY_SPEED_MAX = 1000.0
# Plans (bench and sweep): far beyond any real study, yet small enough that a slip (--repeats 1000000000) is
# refused at once instead of planning for minutes. (low, high) per plan key, whole numbers.
PLAN_RANGES: dict[str, tuple[int, int]] = {
    "limit": (1, 100_000),  # questions (MMLU's test split has 14,042)
    "batch_size": (1, 4096), "batch_sizes": (1, 4096),
    "repeats": (1, 10_000),
    "warmup": (0, 1000),
    "max_tokens": (1, TOKENS_MAX),  # a bench plan's 0 ("each task's own budget") is passed as None
    "input_tokens": (1, TOKENS_MAX), "output_tokens": (1, TOKENS_MAX),
}
PLAN_ROWS_MAX = 1_000_000  # rows in one run, over every model, task or length, batch size and repeat
CHOICES = {"dtype": ("auto", "float16", "bfloat16", "float32"), "device": ("auto", "cuda", "cpu"),
           "quantization": ("none", "8bit", "4bit")}


class InvalidValue(ConfigError):
    """A value out of its range; ``key`` names the setting."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        super().__init__(f"{key} {problem}", fix)


def shown_value(value: Any) -> str:
    """A refused value as an error line shows it: its repr, cut short (a 4000-digit number is one line)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _number(key: str, value: Any, kind: type = float) -> float:
    whole = kind is int
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise InvalidValue(key, f"must be {'a whole number' if whole else 'a number'}, not {shown_value(value)}")
    if isinstance(value, float) and not math.isfinite(value):  # (an int is finite, and may not fit a float)
        raise InvalidValue(key, f"must be a finite number, not {value!r}")
    return value


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def in_range(key: str, value: Any, low: float, high: float | None = None, *, kind: type = float,
             low_open: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` with ``low_open``; no upper bound when ``high`` is None)."""
    number = _number(key, value, kind)
    too_low = number <= low if low_open else number < low
    if too_low or (high is not None and number > high):
        bound = f"more than {_shown(low)}" if low_open else f"at least {_shown(low)}"
        where = f"{bound} and at most {_shown(high)}" if high is not None else bound
        raise InvalidValue(key, f"must be {where}, not {shown_value(value)}")


def check_sampling(params: Any) -> None:
    in_range("max_tokens", params.max_tokens, 1, TOKENS_MAX, kind=int)
    in_range("temperature", params.temperature, 0, TEMPERATURE_MAX)
    in_range("top_p", params.top_p, 0, 1, low_open=True)
    in_range("seed", params.seed, 0, SEED_MAX, kind=int)


def check_spec(spec: Any) -> None:
    in_range("timeout_s", spec.timeout_s, 0, RECORDED_MAX_S, low_open=True)
    in_range("turn_timeout_s", spec.turn_timeout_s, 0, RECORDED_MAX_S, low_open=True)
    in_range("n_ctx", spec.n_ctx, 1, TOKENS_MAX, kind=int)
    in_range("threads", spec.threads, 0, THREADS_MAX, kind=int)  # 0: measured (runtime/threads.py)
    if spec.n_gpu_layers is not None:  # None: decided at load (all layers where llama.cpp can offload)
        in_range("n_gpu_layers", spec.n_gpu_layers, -1, GPU_LAYERS_MAX, kind=int)
    for key, allowed in CHOICES.items():
        if getattr(spec, key) not in allowed:
            raise InvalidValue(key, f"must be one of {', '.join(allowed)}, not {getattr(spec, key)!r}")
    tags = spec.think_tags
    if tags and (len(tags) != 2 or not all(tags) or tags[0] == tags[1]):
        raise InvalidValue("think_tags", f"must be two different non-empty strings (opening, closing) or [], "
                                         f"not {list(tags)!r}")


def check_pace(ttft: Any, tps: Any, words: Any) -> None:
    in_range("ttft", ttft, 0, PACE_TTFT_MAX_S)
    in_range("tps", tps, PACE_TPS_MIN, PACE_TPS_MAX)
    in_range("words", words, 1, PACE_WORDS_MAX, kind=int)


def check_task(task: Any) -> None:
    in_range("max_tokens", task.max_tokens, 1, TOKENS_MAX, kind=int)


def check_speed(speed: Any) -> None:
    in_range("speed", speed, REPLAY_SPEED_MIN, REPLAY_SPEED_MAX)


def check_plan(**plan: Any) -> None:
    """Each given plan value (a number, or a list of them) within PLAN_RANGES; None: not given."""
    for key, value in plan.items():
        low, high = PLAN_RANGES[key]
        for number in value if isinstance(value, (list, tuple)) else [] if value is None else [value]:
            in_range(key, number, low, high, kind=int)


def check_rows(rows: int) -> None:
    """A plan of at most PLAN_ROWS_MAX rows: one line, before any folder is made or row is planned."""
    if rows > PLAN_ROWS_MAX:
        raise DataError(f"the plan has {rows:,} rows, more than the {PLAN_ROWS_MAX:,} one run may hold",
                        "run fewer models, questions, lengths, batch sizes or repeats, or split the study into runs")


def recorded(value: Any, high: float = RECORDED_MAX_S) -> bool:
    """Whether a recorded figure (a log's or an import's time in s, unless ``high`` says otherwise) is a finite
    number from 0 to ``high``: outside that it is damage, which the reader counts and skips."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= high


# ---- numbers typed by a user: ASCII only ----------------------------------------------------------

_WHOLE = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


def parse_whole(text: str) -> int:
    """``text`` as a whole number written in ASCII digits; ValueError otherwise (``int()`` would take "²" for a
    digit and fail, "١٢" for 12, and "1_000")."""
    text = text.strip()
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)  # ValueError beyond Python's 4300 digits, too


def parse_number(text: str) -> float:
    """``text`` as a number written in ASCII (NaN and infinity are parsed, and refused by the ranges)."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    return float(text)


def parse_counts(text: str, option: str, example: str = "1,2,4,8") -> list[int]:
    """"1,2,4,8" as a list of whole numbers of at least 1, in the order given, repeats dropped; a bad entry is one
    DataError naming ``option`` (ranges: check_plan)."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = parse_whole(part)
        except ValueError:
            value = 0
        if value < 1:
            raise DataError(f"{option}: {part!r} is not a whole number of at least 1", f"pass e.g. {example}")
        values.append(value)
    if not values:
        raise DataError(f"{option} is empty", f"pass e.g. {example}")
    return list(dict.fromkeys(values))
