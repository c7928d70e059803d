"""Outside strings (model output, server bodies, file names, config text, URLs) made safe to show and store.

One place for the rules, so every boundary (CLI lines, widgets, logs, exports) applies the same ones:
``safe_text`` neutralises terminal control codes, ``safe_line`` also folds the text onto one line, and
``redact_url`` / ``redact`` keep credentials out of anything shown or written.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"
JSON_DEPTH_MAX = 100  # far beyond any record taskclock or a benchmark tool writes
JSON_DIGITS_MAX = 30  # an integer literal longer than this is no count or timestamp (ns since 1970: 19 digits)

# C0 controls except \t and \n, DEL, the C1 controls (0x80-0x9f: CSI, OSC... in 8-bit form), and the Unicode
# direction overrides/isolates that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SECRET_QUERY_KEYS = {"key", "api_key", "apikey", "api-key", "token", "access_token", "auth", "password", "secret"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ESC shows as ␛, CR as ␍
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def safe_text(text: object) -> str:
    """``text`` with every control character that could drive a terminal made visible; ``\\n`` and
    ``\\t`` are kept. The result is plain text: never pass it on as Rich markup."""
    return _CONTROL.sub(_visible, str(text))


def safe_line(text: object) -> str:
    """``safe_text`` on one line: line breaks and tabs become spaces (for error lines and labels)."""
    return " ".join(safe_text(text).split())


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo and secret-looking query values replaced by ``***``:
    ``http://user:pass@host/v1`` becomes ``http://user:***@host/v1``. Text that is not a URL is returned
    unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if has_password else f"{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in pairs):
            query = urlencode([(k, REDACTED if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every URL in it redacted and every known secret value (an API key) replaced."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP): text starting with = + - @ TAB or CR
    gets a leading ``'``. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(row: dict[str, object]) -> dict[str, object]:
    return {key: csv_cell(value) for key, value in row.items()}


def error_line(text: object) -> str:
    """Outside text for one line on the terminal (an error, a failure reason): ``safe_line`` and ``redact``."""
    return redact(safe_line(text))


def _bounded_int(text: str) -> int:
    if len(text) > JSON_DIGITS_MAX:
        raise ValueError(f"a {len(text)}-digit number")
    return int(text)


def _too_deep(value: dict | list) -> bool:
    stack: list[tuple[dict | list, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > JSON_DEPTH_MAX:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(data: bytes | str) -> Any:
    """JSON from outside (a log line, a server's body, an imported file), or ValueError for anything that is not
    usable JSON: a syntax error, invalid UTF-8, nesting deeper than JSON_DEPTH_MAX (100,000 deep would raise
    RecursionError here, 990 deep later wherever the value is printed or written), or an integer of more than
    JSON_DIGITS_MAX digits (5,000 would raise a ValueError of Python's own, 400 an OverflowError wherever it meets
    a float). The one parser of outside JSON, so each reader skips and counts such a line as damage."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data  # UnicodeDecodeError is a ValueError
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if isinstance(value, (dict, list)) and text.count("[") + text.count("{") > JSON_DEPTH_MAX and _too_deep(value):
        # (fewer brackets cannot nest deeper: no walk)
        raise ValueError(f"JSON nested deeper than {JSON_DEPTH_MAX}")
    return value
