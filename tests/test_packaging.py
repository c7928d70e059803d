"""The package as a user gets it: a wheel installed (not editable) into a fresh venv, run from outside the
checkout. Catches files that only the checkout has (themes, .tcss) and top-level modules that would collide
with other projects'."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import ROOT

# What setuptools needs to build the wheel; tests, benchmarks and local state stay behind.
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "runs", "sessions", "tests", "benchmarks", "build", "__pycache__",
                                  "*.egg-info", ".pytest_cache")
INSPECT = (
    "import importlib.util, taskclock\n"
    "from importlib.resources import files\n"
    "from taskclock.tui.themes import load_themes\n"
    "themes, problems = load_themes()\n"
    "print(taskclock.__file__)\n"
    "print(','.join(sorted(t.name for t in themes)))\n"
    "print(files('taskclock.tui').joinpath('app.tcss').is_file())\n"
    "print(importlib.util.find_spec('runtime'), importlib.util.find_spec('tui'))\n"
)


def _run(*command: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env,
                            timeout=timeout)
    assert result.returncode == 0, f"{command}: {result.stderr[-1500:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The fresh venv's bin folder, with the wheel installed and the project's dependencies reused through
    a .pth (no network, no second copy of torch)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=LEFT_OUT)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", base / "dist", source,
         cwd=base)
    wheel = next((base / "dist").glob("taskclock-*.whl"))
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    fresh = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                      cwd=base).stdout.strip())
    dependencies = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (fresh / "_project_deps.pth").write_text("\n".join(dependencies) + "\n")
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", "-q",
         wheel, cwd=base)
    return venv / "bin"


@pytest.fixture()
def outside(tmp_path) -> Path:
    assert ROOT not in tmp_path.parents
    return tmp_path


def test_wheel_installs_as_one_taskclock_package_with_its_data(installed, outside):
    lines = _run(installed / "python", "-c", INSPECT, cwd=outside).stdout.splitlines()
    site = Path(sysconfig.get_paths(vars={"base": str(installed.parent)})["purelib"])
    assert Path(lines[0]).is_relative_to(installed.parent), lines[0]  # the wheel, not the checkout
    assert lines[1] == "taskclock-dark,taskclock-high-contrast,taskclock-light"
    assert lines[2] == "True"
    assert lines[3] == "None None"  # no top-level runtime / tui modules
    assert not (site / "runtime").exists() and not (site / "tui").exists()


def test_installed_command_runs_from_outside_the_checkout(installed, outside):
    assert "bench" in _run(installed / "taskclock", "--help", cwd=outside).stdout
    assert "smollm2" in _run(installed / "taskclock", "models", cwd=outside).stdout
    turn = _run(installed / "taskclock", "run", "Hi", "--model", "smollm2", "--max-tokens", "4", cwd=outside)
    produced = re.search(r"^output tokens:\s+(\d+)$", turn.stderr, re.MULTILINE)
    assert produced is not None and 1 <= int(produced.group(1)) <= 4, turn.stderr
    assert re.search(r"^TTFT:\s+\d+\.\d+ s$", turn.stderr, re.MULTILINE), turn.stderr
