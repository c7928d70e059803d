"""What the app remembers between launches: the theme, the Batch tab's MMLU and runs folders, the chat
settings (system prompt, sampling) and the models used last (the model picker lists them first).

Kept in remembered.json beside config.toml and written whole (write_atomic) by the app only, so config.toml
stays the user's own file. Remembered values win over config.toml; command-line flags win over both. A file
that cannot be read is reported and ignored, never fatal: it only holds preferences.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .backend import SamplingParams
from .errors import TaskclockError
from .paths import config_dir
from .storage import ensure_dir, read_json, write_atomic
from .untrusted import redact_url
from .values import InvalidValue

FILE_NAME = "remembered.json"
RECENT_MODELS = 12
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float),
                                       "tuple[str, ...]": (list,)}


@dataclass(frozen=True)
class Remembered:
    theme: str = ""
    mmlu: str = ""  # the MMLU folder last used in the Batch tab
    runs_dir: str = ""  # the Batch tab's runs folder
    system: str = ""  # the chat's system prompt
    max_tokens: int = 0  # 0 (and "" above): not set, the config or the flags decide
    temperature: float = -1.0
    top_p: float = -1.0
    seed: int = -1
    models: tuple[str, ...] = ()  # model names as typed in the picker, the most recent first

    def sampling(self, base: SamplingParams) -> SamplingParams:
        """``base`` with the remembered values that are set."""
        return base.with_overrides(max_tokens=self.max_tokens or None,
                                   temperature=None if self.temperature < 0 else self.temperature,
                                   top_p=None if self.top_p < 0 else self.top_p,
                                   seed=None if self.seed < 0 else self.seed)

    def used(self, names: list[str]) -> tuple[str, ...]:
        """The recent models with ``names`` first; a URL holding credentials is never kept (nor written)."""
        fresh = [name for name in names if redact_url(name) == name]
        return tuple(dict.fromkeys([*fresh, *self.models]))[:RECENT_MODELS]


def chat_values(params: SamplingParams, system: str) -> dict[str, Any]:
    """The remembered fields that the chat settings set."""
    return {"system": system, "max_tokens": params.max_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "seed": params.seed}


def default_path() -> Path:
    return config_dir() / FILE_NAME


def load(path: Path) -> tuple[Remembered, str | None]:
    """The remembered values, and a problem to report once (then every value is the default) or None. The file
    is read through the outside-file gate and every value is checked as a flag or a config value is: a file
    this version did not write (damaged, edited, another version's) must never stop the app from opening."""
    if not os.path.lexists(path):
        return Remembered(), None
    try:
        data = read_json(path, "remembered settings file")
    except TaskclockError as exc:
        return Remembered(), f"{exc.problem}; using defaults"
    if not isinstance(data, dict):
        return Remembered(), f"{path} is not a JSON object; using defaults"
    values: dict[str, Any] = {}
    for f in fields(Remembered):
        value = data.get(f.name)
        kinds = _TYPES[str(f.type)]
        if value is not None and isinstance(value, kinds) and not isinstance(value, bool):
            values[f.name] = value
    models = values.get("models", [])
    values["models"] = tuple(name for name in models if isinstance(name, str) and name and "\0" not in name)[
        :RECENT_MODELS]
    kept = Remembered(**values)
    try:
        kept.sampling(SamplingParams())
    except InvalidValue as exc:
        return Remembered(), f"{path}: {exc.problem}; using defaults"
    if any("\0" in getattr(kept, key) for key in ("mmlu", "runs_dir")):
        return Remembered(), f"{path}: a folder name holds a NUL character; using defaults"
    return kept, None


def save(path: Path, remembered: Remembered) -> None:
    """Raises StorageError when the folder or file cannot be written."""
    ensure_dir(path.parent)
    write_atomic(path, json.dumps(asdict(remembered), indent=2, ensure_ascii=False) + "\n")
