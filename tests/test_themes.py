"""Theme files: the built-in ones load, and every kind of malformed file is named, skipped, never fatal."""
from __future__ import annotations

import pytest

from taskclock.runtime.errors import ConfigError
from taskclock.runtime.paths import builtin_themes_dir
from taskclock.tui.themes import DEFAULT_THEME, load_theme, load_themes


def test_builtin_themes_load():
    themes, problems = load_themes([builtin_themes_dir()])
    assert problems == []
    names = {t.name for t in themes}
    assert {DEFAULT_THEME, "taskclock-light", "taskclock-high-contrast"} <= names
    light = next(t for t in themes if t.name == "taskclock-light")
    assert light.dark is False and light.background == "#F6F7F9"
    contrast = next(t for t in themes if t.name == "taskclock-high-contrast")
    assert contrast.variables["border"] == "#FFFFFF"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('name = "x"\nprimary = "#fff"\ncolour = "red"\n', "'colour'"),
        ('name = "x"\nprimary = "not-a-colour"\n', "'primary'"),
        ('name = "x"\n', "primary"),
        ('name = "x"\nprimary = "#fff"\ndark = "yes"\n', "dark"),
        ('name = "x"\nprimary = "#fff\n', "TOML syntax error"),
        ('name = "x"\nprimary = "#fff"\n[variables]\nborder = 3\n', "'border'"),
    ],
)
def test_malformed_theme_names_file_and_key(tmp_path, body, named):
    path = tmp_path / "broken.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_theme(path)
    assert str(path) in str(caught.value) and named in str(caught.value)


def test_a_bad_file_is_skipped_and_reported(tmp_path):
    (tmp_path / "good.toml").write_text('name = "good"\nprimary = "#123456"\n')
    (tmp_path / "bad.toml").write_text('name = "bad"\nprimary = 7\n')
    themes, problems = load_themes([tmp_path, tmp_path / "missing"])
    assert [t.name for t in themes] == ["good"]
    assert len(problems) == 1 and "bad.toml" in problems[0] and "primary" in problems[0]
