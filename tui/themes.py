"""Theme files (TOML) → Textual ``Theme`` objects, from the built-in themes/ folder and the user's.

A bad file never stops the app: it is reported (file and key named) and skipped, and a requested theme
that is missing falls back to the default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from taskclock.runtime.config import build, read_toml
from taskclock.runtime.errors import ConfigError
from taskclock.runtime.paths import builtin_themes_dir, config_dir

DEFAULT_THEME = "taskclock-dark"
COLOR_KEYS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground", "background",
              "surface", "panel", "boost")


@dataclass(frozen=True)
class ThemeFile:
    """What a theme file may contain; an empty colour lets Textual derive it from the others."""

    name: str
    primary: str
    secondary: str = ""
    accent: str = ""
    warning: str = ""
    error: str = ""
    success: str = ""
    foreground: str = ""
    background: str = ""
    surface: str = ""
    panel: str = ""
    boost: str = ""
    dark: bool = True
    variables: dict = field(default_factory=dict)


def theme_folders() -> list[Path]:
    """Built-in first, so a user theme with the same name overrides it."""
    return [builtin_themes_dir(), config_dir() / "themes"]


def _check_color(path: Path, key: str, value: str) -> None:
    try:
        Color.parse(value)
    except ColorParseError:
        raise ConfigError(f"{path}: theme key {key!r} is not a colour: {value!r}",
                          "use #RRGGBB or a colour name") from None


def load_theme(path: Path) -> Theme:
    """One theme file; raises ConfigError naming the file and the bad key."""
    spec = build(ThemeFile, read_toml(path, "theme"), path, "theme")
    for key in COLOR_KEYS:
        if getattr(spec, key):
            _check_color(path, key, getattr(spec, key))
    for key, value in spec.variables.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: theme variable {key!r} must be a string, not {value!r}", "quote the value")
    values = asdict(spec)
    colors: dict[str, Any] = {key: values[key] or None for key in COLOR_KEYS}
    return Theme(name=spec.name, dark=spec.dark, variables=dict(spec.variables), **colors)


def load_themes(folders: list[Path] | None = None) -> tuple[list[Theme], list[str]]:
    """Every theme that loads, and one message per file that does not."""
    themes: list[Theme] = []
    problems: list[str] = []
    for folder in theme_folders() if folders is None else folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                themes.append(load_theme(path))
            except ConfigError as exc:
                problems.append(f"{exc}; using the other themes")
    return themes, problems
