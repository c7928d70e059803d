"""Where taskclock reads and writes: one place for every folder (XDG dirs via platformdirs)."""
from __future__ import annotations

import os
from pathlib import Path

APP = "taskclock"
CHECKOUT = Path(__file__).resolve().parent.parent


def _platformdirs():
    import platformdirs

    return platformdirs


def config_dir() -> Path:
    return Path(_platformdirs().user_config_dir(APP))


def cache_dir() -> Path:
    return Path(os.environ.get("TASKCLOCK_CACHE") or _platformdirs().user_cache_dir(APP))


def data_dir() -> Path:
    return Path(_platformdirs().user_data_dir(APP))


def log_dir() -> Path:
    return Path(_platformdirs().user_log_dir(APP))


def in_checkout() -> bool:
    """True when the working directory is the source checkout taskclock runs from: only then are its
    ``./sessions`` and ``./runs`` the default folders. From anywhere else (even with an editable install,
    whose code lives in the checkout) files go to the user data dir, never into the project."""
    try:
        here = Path.cwd().resolve()
    except OSError:  # the working directory was deleted
        return False
    return here == CHECKOUT and (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "sessions").is_dir()


def default_sessions_dir() -> Path:
    return CHECKOUT / "sessions" if in_checkout() else data_dir() / "sessions"


def default_runs_dir() -> Path:
    return CHECKOUT / "runs" if in_checkout() else data_dir() / "runs"


def builtin_themes_dir() -> Path:
    """The theme files shipped as package data, wherever the package is installed."""
    from importlib.resources import files

    return Path(str(files("taskclock.themes")))
