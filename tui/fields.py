"""Numbers typed into the tabs' fields, read and ranged the way the command line reads its options: ASCII digits
only, and the plan's range from runtime/values.py; a refused value is named by its field (output tokens, not
output_tokens), as the CLI names it by its option (tui/commands/common.py options_named)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from taskclock.runtime import values


@contextlib.contextmanager
def _field_named() -> Iterator[None]:
    try:
        yield
    except values.InvalidValue as exc:
        label = exc.key.replace("_", " ")
        raise values.InvalidValue(label, exc.problem.removeprefix(exc.key).strip(), f"fix the {label} field") from None


def plan_number(text: str, key: str) -> int:
    """A whole-number field holding the plan value ``key`` (a values.PLAN_RANGES key)."""
    try:
        number: int | str = values.parse_whole(text)
    except ValueError:
        number = text  # refused below as "must be a whole number, not 'text'"
    with _field_named():
        values.check_plan(**{key: number})
    assert isinstance(number, int)
    return number


def plan_counts(text: str, key: str, example: str) -> list[int]:
    """A comma-separated field of whole numbers holding the plan values ``key``."""
    numbers = values.parse_counts(text, key.replace("_", " "), example)
    with _field_named():
        values.check_plan(**{key: numbers})
    return numbers
