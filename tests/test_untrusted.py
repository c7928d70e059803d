"""The one set of rules for outside strings: control codes neutralised, credentials redacted."""
from taskclock.runtime.untrusted import redact, redact_url, safe_line, safe_text


def test_escape_sequences_become_visible_and_newlines_and_tabs_stay():
    hostile = "a\x1b]0;pwned\x07b\x1b[2Jc\x1b]52;c;ZXZpbA==\x07\td\ne\r\x9b31m\x7f\u202e"
    shown = safe_text(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown and "\x9b" not in shown
    assert "\x7f" not in shown and "\u202e" not in shown
    assert "\t" in shown and "\n" in shown
    assert shown.startswith("a␛]0;pwned␇b␛[2Jc")
    assert "\\x9b" in shown and "\\u202e" in shown


def test_plain_text_is_unchanged():
    text = "Plain words, ünïcödé, 日本語, emoji 🙂 and [bold]markup-looking[/bold] text.\n\tIndented."
    assert safe_text(text) == text


def test_safe_line_folds_onto_one_line():
    assert safe_line("first\nsecond\tthird\r\n") == "first second third␍"


def test_url_userinfo_and_secret_query_values_are_redacted():
    assert redact_url("http://user:pass@host:8000/v1") == "http://user:***@host:8000/v1"
    assert redact_url("https://tok3n@host/v1") == "https://***@host/v1"
    assert redact_url("http://host/v1?api_key=abc&x=1") == "http://host/v1?api_key=***&x=1"
    assert redact_url("http://127.0.0.1:8080/v1#model") == "http://127.0.0.1:8080/v1#model"
    assert redact_url("not a url") == "not a url"


def test_redact_finds_urls_and_known_secrets_inside_text():
    line = "cannot reach http://bob:hunter2@10.0.0.5:8000/v1: refused (key sk-live-123456)"
    out = redact(line, secrets=("sk-live-123456",))
    assert "hunter2" not in out and "sk-live-123456" not in out
    assert "http://bob:***@10.0.0.5:8000/v1:" in out
