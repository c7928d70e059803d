"""The allowed range of every sampling and model number, checked in one place for config and CLI alike.

``SamplingParams``, ``ModelSpec`` and ``TaskSpec`` call these checks when they are built, so a value from a
config file, a run.toml, a command-line option or the app is refused the same way: one ``InvalidValue``
naming the key (the config loader adds the file and line). See docs/CONFIG.md for the table.
"""
from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

SEED_MAX = 2**32 - 1  # what every backend's RNG accepts (numpy and llama.cpp take 32-bit seeds)
TEMPERATURE_MAX = 2.0
# Pace (CLI and tab): far beyond any real server, yet small enough that the figures shown stay meaningful.
PACE_TPS_MAX = 100_000.0
PACE_TTFT_MAX_S = 3600.0
PACE_WORDS_MAX = 5000


class InvalidValue(ConfigError):
    """A value out of its range; ``key`` names the setting."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        super().__init__(f"{key} {problem}", fix)


def _number(key: str, value: Any, kind: type = float) -> float:
    whole = kind is int
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise InvalidValue(key, f"must be {'a whole number' if whole else 'a number'}, not {value!r}")
    if not math.isfinite(value):
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
        raise InvalidValue(key, f"must be {where}, not {value!r}")


def check_sampling(params: Any) -> None:
    in_range("max_tokens", params.max_tokens, 1, kind=int)
    in_range("temperature", params.temperature, 0, TEMPERATURE_MAX)
    in_range("top_p", params.top_p, 0, 1, low_open=True)
    in_range("seed", params.seed, 0, SEED_MAX, kind=int)


CHOICES = {"dtype": ("auto", "float16", "bfloat16", "float32"), "device": ("auto", "cuda", "cpu"),
           "quantization": ("none", "8bit", "4bit")}


def check_spec(spec: Any) -> None:
    in_range("timeout_s", spec.timeout_s, 0, low_open=True)
    in_range("turn_timeout_s", spec.turn_timeout_s, 0, low_open=True)
    in_range("n_ctx", spec.n_ctx, 1, kind=int)
    in_range("threads", spec.threads, 0, kind=int)  # 0: measured (runtime/threads.py)
    if spec.n_gpu_layers is not None:  # None: decided at load (all layers where llama.cpp can offload)
        in_range("n_gpu_layers", spec.n_gpu_layers, -1, kind=int)
    for key, allowed in CHOICES.items():
        if getattr(spec, key) not in allowed:
            raise InvalidValue(key, f"must be one of {', '.join(allowed)}, not {getattr(spec, key)!r}")
    tags = spec.think_tags
    if tags and (len(tags) != 2 or not all(tags) or tags[0] == tags[1]):
        raise InvalidValue("think_tags", f"must be two different non-empty strings (opening, closing) or [], "
                                         f"not {list(tags)!r}")


def check_pace(ttft: Any, tps: Any, words: Any) -> None:
    in_range("ttft", ttft, 0, PACE_TTFT_MAX_S)
    in_range("tps", tps, 0, PACE_TPS_MAX, low_open=True)
    in_range("words", words, 1, PACE_WORDS_MAX, kind=int)


def check_task(task: Any) -> None:
    in_range("max_tokens", task.max_tokens, 1, kind=int)
