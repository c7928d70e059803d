"""What the app remembers between launches: the theme, the Batch tab's MMLU and runs folders and the chat
settings (system prompt, sampling).

Kept in remembered.json beside config.toml and written whole (write_atomic) by the app only, so config.toml
stays the user's own file. Remembered values win over config.toml; command-line flags win over both. A file
that cannot be read is reported and ignored, never fatal: it only holds preferences.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .backend import SamplingParams
from .paths import config_dir
from .storage import ensure_dir, write_atomic

FILE_NAME = "remembered.json"
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


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

    def sampling(self, base: SamplingParams) -> SamplingParams:
        """``base`` with the remembered values that are set."""
        return base.with_overrides(max_tokens=self.max_tokens or None,
                                   temperature=None if self.temperature < 0 else self.temperature,
                                   top_p=None if self.top_p < 0 else self.top_p,
                                   seed=None if self.seed < 0 else self.seed)



def chat_values(params: SamplingParams, system: str) -> dict[str, Any]:
    """The remembered fields that the chat settings set."""
    return {"system": system, "max_tokens": params.max_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "seed": params.seed}


def default_path() -> Path:
    return config_dir() / FILE_NAME


def load(path: Path) -> tuple[Remembered, str | None]:
    """The remembered values, and a problem to report (then the defaults are used) or None."""
    if not path.is_file():
        return Remembered(), None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Remembered(), f"cannot read {path}: {exc}; using defaults"
    if not isinstance(data, dict):
        return Remembered(), f"{path} is not a JSON object; using defaults"
    values: dict[str, Any] = {}
    for f in fields(Remembered):
        value = data.get(f.name)
        kinds = _TYPES[str(f.type)]
        if value is not None and isinstance(value, kinds) and not isinstance(value, bool):
            values[f.name] = value
    return Remembered(**values), None


def save(path: Path, remembered: Remembered) -> None:
    """Raises StorageError when the folder or file cannot be written."""
    ensure_dir(path.parent)
    write_atomic(path, json.dumps(asdict(remembered), indent=2, ensure_ascii=False) + "\n")
