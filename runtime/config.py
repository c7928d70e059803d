"""User config in TOML, validated into typed objects.

Unknown keys and wrong types are errors naming the file, the key and (where it can be found) the line,
so a typo never silently falls back to a default.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .backend import ModelSpec, SamplingParams
from .errors import ConfigError
from .paths import config_dir
from .storage import ensure_dir, read_text, write_atomic
from .untrusted import redact_url, safe_line
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
    return parse_toml(path, read_text(path, f"{what} file", error=ConfigError))


def parse_toml(path: Path, text: str) -> dict[str, Any]:
    """The TOML ``text`` read from ``path``; a syntax error is a ConfigError naming the file."""
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


# ---- "save as": a [models.NAME] entry added to the user's config ------------------------------------------

SAVED_KEYS = ("backend", "source", "api_model", "api_key_env", "chat", "n_ctx")  # what a picked model is
_SAVE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a TOML bare key, so the table header needs no quoting


def user_config_path(config: Config) -> Path:
    """Where "save as" writes: the config file in use, else config.toml in the user config dir (made then)."""
    return config.path or config_dir() / "config.toml"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # a JSON string is a TOML basic string, once DEL (which TOML wants escaped and JSON leaves) is escaped
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def model_table(name: str, spec: ModelSpec) -> str:
    """The ``[models.NAME]`` table for ``spec``: its backend and source, and the keys that differ from the
    defaults."""
    default = ModelSpec(name, spec.backend, spec.source)
    lines = [f"[models.{name}]"]
    for key in SAVED_KEYS:
        value = getattr(spec, key)
        if key in ("backend", "source") or value != getattr(default, key):
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def save_model(path: Path, name: str, spec: ModelSpec, builtin: set[str] | frozenset[str] = frozenset()) -> ModelSpec:
    """Add ``[models.NAME]`` for ``spec`` to the TOML config at ``path`` (created when missing) and return the
    spec as that config now names it. The file is checked to still parse with the entry, then written whole
    and atomically (its permissions kept); an existing entry, a built-in name, a link or a device is refused,
    and a URL with a password is never written (the key belongs in ``api_key_env``)."""
    if not _SAVE_NAME.match(name):
        raise ConfigError(f"{safe_line(name)!r} cannot name a model", "use letters, digits, - and _ (at most 64)")
    if name in builtin:
        raise ConfigError(f"{name} is a built-in model name", "pick another name")
    if redact_url(spec.source) != spec.source:
        raise ConfigError("the URL holds a password or key, which a config file must not keep",
                          "save the URL without it and name the key's environment variable in api_key_env")
    path = Path(path)
    existing = os.path.lexists(path)
    text = read_text(path, "config file", error=ConfigError) if existing else ""
    parsed = parse_toml(path, text)
    if text and not text.endswith("\n"):
        text += "\n"
    if _tables(parsed, "models", path).get(name) is not None:
        raise ConfigError(f"{path} already has [models.{name}]", "pick another name, or edit the file")
    new = text + ("\n" if text else "") + model_table(name, spec)
    try:
        table = tomllib.loads(new)["models"][name]
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot add [models.{name}] to {path}: {safe_line(exc)}", "edit the file by hand") \
            from None
    saved = build(ModelSpec, table, path, f"models.{name}", name=name)
    ensure_dir(path.parent)
    mode = stat.S_IMODE(path.stat().st_mode) if existing else 0o644
    write_atomic(path, new, replace=existing, mode=mode)
    return saved
