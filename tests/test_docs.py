"""The docs say what the code does: docs/ARCHITECTURE.md's checklists name files that exist, and docs/CONFIG.md's
tables of backend options and the CLI's backend flags are the declarations of runtime/options.py."""
import re

import pytest
from helpers import ROOT

from taskclock.runtime import options
from taskclock.runtime.backend import BACKENDS
from taskclock.tui.cli import build_parser

CHECKLIST_ITEM = re.compile(r"^\d+\. (.*(?:\n {3}.*)*)", re.M)
FILE_NAME = re.compile(r"`([\w./-]+\.(?:py|md|tcss|toml))`")
COMMANDS_WITH_BACKEND_OPTIONS = ("run", "chat", "compare", "bench", "sweep", "doctor")


def checklist_files(text: str) -> list[str]:
    """The files named in backticks in the numbered items of every "## Adding ..." section."""
    named = []
    for section in re.split(r"^## ", text, flags=re.M):
        if section.startswith("Adding "):
            for item in CHECKLIST_ITEM.findall(section):
                named += FILE_NAME.findall(item)
    return named


def exists(name: str) -> bool:
    """A file of the checkout; NAME stands for any name (``runtime/backends/NAME.py``: some backend module)."""
    return any(ROOT.glob(name.replace("NAME", "*"))) if "NAME" in name else (ROOT / name).is_file()


def test_the_architecture_checklists_name_files_that_exist():
    named = checklist_files((ROOT / "docs" / "ARCHITECTURE.md").read_text())
    assert "runtime/options.py" in named and "docs/CONFIG.md" in named  # the parser finds the checklists
    assert [name for name in named if not exists(name)] == []


def test_the_checklist_reader_catches_a_file_that_does_not_exist():
    text = "## Adding a thing\n\n1. `runtime/no_such_module.py`: its code.\n2. `docs/CONFIG.md`: its line.\n"
    assert [name for name in checklist_files(text) if not exists(name)] == ["runtime/no_such_module.py"]


def config_doc_rows() -> dict[str, list[tuple[str, str, str, str]]]:
    """docs/CONFIG.md's "Backend options": per backend, each row's key, option, allowed and default."""
    text = (ROOT / "docs" / "CONFIG.md").read_text()
    section = text.split("### Backend options", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, list[tuple[str, str, str, str]]] = {}
    for part in section.split("\n#### ")[1:]:
        backend = part.split("`")[1]
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in part.splitlines()
                 if line.startswith("| `")]
        rows[backend] = [(c[0].strip("`"), c[1].strip("`"), c[2], c[3].strip("`")) for c in cells]
    return rows


def declared_rows(block) -> list[tuple[str, str, str, str]]:
    return [(o.name, o.flag, o.allowed(), options._written(o.default)) for o in options.declarations(block)]


def test_config_md_lists_every_declared_option_with_its_flag_range_and_default():
    assert config_doc_rows() == {name: declared_rows(block) for name, block in options.BACKEND_OPTIONS.items()}


def test_every_registered_backend_declares_its_options():
    assert set(BACKENDS) == set(options.BACKEND_OPTIONS)


def test_an_option_that_two_backends_declare_is_one_declaration():
    """threads (llamacpp and hf) shares one flag: its type, range, default and help must be the same."""
    by_name: dict[str, list] = {}
    for block in options.BACKEND_OPTIONS.values():
        for o in options.declarations(block):
            by_name.setdefault(o.name, []).append(o)
    assert [name for name, found in by_name.items() if any(o != found[0] for o in found)] == []
    assert len(options.backends_of("threads")) == 2


def backend_group(command: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return next(g for g in sub._action_groups if (g.title or "").startswith("backend options"))


@pytest.mark.parametrize("command", COMMANDS_WITH_BACKEND_OPTIONS)
def test_the_cli_backend_flags_are_the_declared_ones(command):
    group = backend_group(command)
    flags = {a.option_strings[0]: a for a in group._group_actions}
    assert set(flags) == set(options.flags())
    for flag, declared in options.flags().items():
        action = flags[flag]
        assert action.dest == declared.name
        if declared.choices:
            assert tuple(action.choices) == declared.choices
        elif declared.range is not None:
            assert declared.range.text() in action.help
