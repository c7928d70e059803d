"""The MMLU loader on the built-in copy and on small hand-written bad files; the stratified sample."""
from __future__ import annotations

from collections import Counter

import pytest
from helpers import RELEASE_MMLU

from taskclock.runtime import mmlu
from taskclock.runtime.errors import DataError


@pytest.fixture(scope="module")
def data():
    return mmlu.load(None)


def test_built_in_copy_loads_every_row(data):
    # SOURCE.md: 57 subjects, 14,042 test rows, none malformed.
    assert len(data.subjects()) == 57
    assert len(data.questions) == 14042
    assert data.skipped == []
    assert all(q.answer in mmlu.LETTERS and len(q.choices) == 4 for q in data.questions)
    assert len({q.id for q in data.questions}) == len(data.questions)


def test_quoted_newlines_survive(data):
    assert any("\n" in q.question for q in data.questions)


def test_selection_is_deterministic_and_seeded(data):
    first = [q.id for q in mmlu.select(data, None, 660, seed=0)]
    again = [q.id for q in mmlu.select(mmlu.load(None), None, 660, seed=0)]
    other = [q.id for q in mmlu.select(data, None, 660, seed=1)]
    assert first == again
    assert len(first) == len(set(first)) == 660
    assert first != other


def test_selection_is_stratified_by_subject_size(data):
    picked = mmlu.select(data, None, 660, seed=3)
    sizes = Counter(q.subject for q in data.questions)
    counts = Counter(q.subject for q in picked)
    for subject, size in sizes.items():
        share = 660 * size / len(data.questions)
        assert abs(counts[subject] - share) < 1, subject


def test_subject_filter_and_whole_subject(data):
    picked = mmlu.select(data, ["anatomy", "virology"], 10, seed=0)
    assert {q.subject for q in picked} == {"anatomy", "virology"}
    assert len(picked) == 10
    everything = mmlu.select(data, ["anatomy"], 100000, seed=0)
    assert len(everything) == sum(1 for q in data.questions if q.subject == "anatomy")


@pytest.mark.parametrize("limit", [0, -5])
def test_bad_limit_is_a_one_line_error(data, limit):
    with pytest.raises(DataError, match="--limit"):
        mmlu.select(data, None, limit, seed=0)


def test_unknown_subject(data):
    with pytest.raises(DataError, match="unknown MMLU subject"):
        mmlu.select(data, ["astrology"], 5, seed=0)


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def test_malformed_rows_are_skipped_and_counted(tmp_path):
    _write(tmp_path / "test" / "toy_test.csv",
           'What is 1+1?,1,2,3,4,B\r\n'
           '"A question\nover two lines",w,x,y,z,D\n'
           'too,few,fields,C\n'
           'Bad answer,a,b,c,d,E\n'
           'Seven,fields,a,b,c,d,A\n')
    data = mmlu.load(str(tmp_path))
    assert [q.id for q in data.questions] == ["toy/0", "toy/1"]
    assert data.questions[1].question == "A question\nover two lines"
    assert data.questions[1].answer == "D"
    assert len(data.skipped) == 3
    assert "expected 6 fields, found 4" in data.skipped[0]
    assert "'E' is not one of A-D" in data.skipped[1]


def test_data_subfolder_layout(tmp_path):
    _write(tmp_path / "data" / "test" / "toy_test.csv", "Q?,a,b,c,d,A\n")
    assert mmlu.load(str(tmp_path)).subjects() == ["toy"]


def test_missing_folder_and_folder_without_csvs(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        mmlu.load(str(tmp_path / "nowhere"))
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match="no \\*_test.csv"):
        mmlu.load(str(tmp_path))
    with pytest.raises(DataError, match="no test/ or data/test/"):
        mmlu.load(str(tmp_path / "test"))


def test_only_malformed_rows_is_an_error(tmp_path):
    _write(tmp_path / "test" / "toy_test.csv", "a,b,c\n")
    with pytest.raises(DataError, match="no valid MMLU rows"):
        mmlu.load(str(tmp_path))


def test_path_precedence(monkeypatch):
    monkeypatch.setenv("TASKCLOCK_MMLU", "/env")
    assert mmlu.resolve_path("/flag", "/config") == "/flag"
    assert mmlu.resolve_path(None, "/config") == "/env"
    monkeypatch.delenv("TASKCLOCK_MMLU")
    assert mmlu.resolve_path(None, "/config") == "/config"
    assert mmlu.resolve_path(None, "") is None


def test_hub_without_datasets_says_how_to_fix(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("datasets") is not None:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="--mmlu hub needs the `datasets` package") as caught:
        mmlu.load("hub")
    assert "shared" not in str(caught.value)


def test_errors_never_point_at_the_workspace(tmp_path):
    with pytest.raises(DataError) as caught:
        mmlu.load(str(tmp_path / "nowhere"))
    assert "shared" not in str(caught.value)


def test_no_path_loads_the_built_in_copy():
    data = mmlu.load(None)
    assert data.source == mmlu.EMBEDDED
    assert len(data.questions) == 14042 and len(data.subjects()) == 57 and data.skipped == []
    assert mmlu.load(mmlu.EMBEDDED).questions == data.questions


@pytest.mark.parametrize("split", ["test", "dev"])
def test_built_in_copy_equals_the_csv_release_row_for_row(split):
    """The shipped zip holds the release's bytes: every row of every subject, in order, equals the CSVs'."""
    if not RELEASE_MMLU.is_dir():
        pytest.skip(f"the CSV release is not at {RELEASE_MMLU} (set TASKCLOCK_TEST_MMLU to compare against it)")
    embedded, release = mmlu.load(None, split), mmlu.load(str(RELEASE_MMLU), split)
    assert embedded.questions == release.questions
    assert len(embedded.questions) == {"test": 14042, "dev": 285}[split]


def test_built_in_copy_matches_its_checksums():
    import hashlib
    import zipfile

    archive = mmlu.embedded_archive()
    sums = dict(reversed(line.split("  ", 1)) for line in
                archive.parent.joinpath("SHA256SUMS").read_text(encoding="utf-8").splitlines())
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == sums.pop(mmlu.EMBEDDED_ARCHIVE)
    with zipfile.ZipFile(archive.open("rb")) as opened:
        assert sorted(opened.namelist()) == sorted(sums)
        for name, digest in sums.items():
            assert hashlib.sha256(opened.read(name)).hexdigest() == digest, name
