"""Deferred imports really defer: the only proof is a fresh interpreter's sys.modules."""
import subprocess
import sys

from helpers import ROOT

HEAVY = ("torch", "transformers", "llama_cpp", "textual")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.rsplit("LOADED:", 1)[1].split())


def test_runtime_never_imports_textual_or_the_engines():
    code = ("import taskclock.runtime.metrics, taskclock.runtime.backend, taskclock.runtime.models, "
            "taskclock.runtime.config, taskclock.runtime.turn, taskclock.runtime.storage")
    assert loaded_after(code) == set()


def test_help_imports_no_engine_and_no_ui():
    code = "from tui.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == set()


def test_runtime_source_has_no_textual_import():
    offenders = [p for p in (ROOT / "runtime").rglob("*.py") if "import textual" in p.read_text()
                 or "from textual" in p.read_text()]
    assert offenders == []
