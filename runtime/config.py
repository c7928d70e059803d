"""User config in TOML, validated into typed objects.

Unknown keys and wrong types are errors naming the file, the key and (where it can be found) the line,
so a typo never silently falls back to a default.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .backend import ModelSpec, SamplingParams
from .errors import ConfigError
from .paths import config_dir
from .storage import read_text
from .values import InvalidValue, check_task

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Defaults:
    model: str = "smollm2"
    theme: str = "taskclock-dark"
    sessions_dir: str = ""
    runs_dir: str = ""
    mmlu: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """A batch task set: a prompt template over an MMLU question (see docs/TASKS.md)."""

    name: str
    template: str
    max_tokens: int = 256
    scored: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        check_task(self)


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    defaults: Defaults = Defaults()
    sampling: SamplingParams = SamplingParams()
    models: dict[str, ModelSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)


def read_toml(path: Path, what: str = "config") -> dict[str, Any]:
    """Parse a TOML file, read through the outside-file gate (storage.read_text); every failure is a ConfigError
    naming the file."""
    text = read_text(path, f"{what} file", error=ConfigError)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}", "fix the file") from None


def _line_of(path: Path, key: str) -> str:
    with contextlib.suppress(ConfigError):  # it was read a moment ago; if it cannot be now, no line is named
        for number, line in enumerate(read_text(path, "config file", error=ConfigError).splitlines(), 1):
            if re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", line):
                return f" (line {number})"
    return ""


_TYPES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", tuple: "a list of strings",
          dict: "a table"}


def _check_type(path: Path, where: str, key: str, value: Any, expected: type) -> Any:
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if not ok:
        raise ConfigError(
            f"{path}{_line_of(path, key)}: [{where}] {key} must be {_TYPES.get(expected, expected.__name__)}, "
            f"not {value!r}",
            "fix the value",
        )
    return value


OPTIONAL_TYPES = {"int | None": int, "float | None": float, "str | None": str, "bool | None": bool}


def _expected_type(f: Any) -> type:
    if f.default is None:  # an optional setting whose default is worked out later ("int | None")
        return OPTIONAL_TYPES.get(f.type, type(None))
    if f.default is not MISSING:
        return type(f.default)
    if f.default_factory is not MISSING:
        return type(f.default_factory())
    return str


def build(cls: type, data: dict[str, Any], path: Path, where: str, **fixed: Any) -> Any:
    """Make a dataclass from a TOML table, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{where}] must be a table", "see docs/CONFIG.md")
    known = {f.name: f for f in fields(cls) if f.name not in fixed}
    values: dict[str, Any] = dict(fixed)
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"{path}{_line_of(path, key)}: unknown key {key!r} in [{where}]",
                f"valid keys: {', '.join(sorted(known))}",
            )
        values[key] = _check_type(path, where, key, value, _expected_type(known[key]))
    try:
        return cls(**values)
    except InvalidValue as exc:
        raise ConfigError(f"{path}{_line_of(path, exc.key)}: [{where}] {exc.problem}", "fix the value") from None
    except TypeError as exc:
        raise ConfigError(f"{path}: [{where}] is incomplete: {exc}", "see docs/CONFIG.md") from None


def _tables(data: dict[str, Any], section: str, path: Path) -> dict[str, Any]:
    """``[models.NAME]`` / ``[tasks.NAME]``: the section must be a table of tables."""
    tables = data.get(section, {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}{_line_of(path, section)}: {section} must be a table of [{section}.NAME] tables, "
                          f"not {tables!r}", "see docs/CONFIG.md")
    return tables


def config_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """--config, then TASKCLOCK_CONFIG, then the user config dir (only if that file exists)."""
    if explicit:
        return Path(explicit)
    if os.environ.get("TASKCLOCK_CONFIG"):
        return Path(os.environ["TASKCLOCK_CONFIG"])
    default = config_dir() / "config.toml"
    return default if default.is_file() else None


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    path = config_path(explicit)
    if path is None:
        return Config()
    data = read_toml(path)
    known = {"defaults", "sampling", "models", "tasks"}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{path}{_line_of(path, key)}: unknown section or key {key!r}",
                f"valid sections: {', '.join(sorted(known))}",
            )
    models = {
        name: build(ModelSpec, table, path, f"models.{name}", name=name)
        for name, table in _tables(data, "models", path).items()
    }
    tasks = {
        name: build(TaskSpec, table, path, f"tasks.{name}", name=name)
        for name, table in _tables(data, "tasks", path).items()
    }
    return Config(
        path=path,
        defaults=build(Defaults, data.get("defaults", {}), path, "defaults"),
        sampling=build(SamplingParams, data.get("sampling", {}), path, "sampling"),
        models=models,
        tasks=tasks,
    )
