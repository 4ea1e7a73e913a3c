import re

import pytest

from abllm.telemetry import Redactor, pseudonymous_id, redact, redact_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to bob.smith+x@mail.example.co.uk today", "write to [EMAIL] today"),
        ("call +1 415 555 0100 now", "call [PHONE] now"),
        ("call (555) 123-4567 or 555.123.4567", "call [PHONE] or [PHONE]"),
        ("uk office +44 20 7946 0958", "uk office [PHONE]"),
        ("card 4111 1111 1111 1111 exp 12/29", "card [CARD] exp 12/29"),
        ("card 5500-0000-0000-0004", "card [CARD]"),
        ("key sk-proj-abcdefghijklmnop1234 here", "key [API_KEY] here"),
        ("anthropic sk-ant-api03-AAAABBBBCCCCDDDD", "anthropic [API_KEY]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [API_KEY]"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def", "Authorization: [API_KEY]"),
        ("api_key=0123456789abcdef0123456789abcdef", "api_key=[API_KEY]"),
    ],
)
def test_redacts_pii_and_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 shipped",  # 13 digits, fails Luhn: not a card
        "on 2024-01-15 10:30:00 we had 12345 users",
        "version 3.11.7, port 8080",
        "",
    ],
)
def test_leaves_ordinary_numbers(text: str) -> None:
    assert redact(text) == text


def test_redact_value_walks_nested_json() -> None:
    value = {"messages": [{"role": "user", "content": "I am a@b.io"}], "n": 3, "ok": True}
    assert redact_value(value) == {
        "messages": [{"role": "user", "content": "I am [EMAIL]"}],
        "n": 3,
        "ok": True,
    }


def test_extra_patterns() -> None:
    r = Redactor(extra=((re.compile(r"ACCT-\d+"), "[ACCOUNT]"),))
    assert r("acct ACCT-991 for x@y.com") == "acct [ACCOUNT] for [EMAIL]"


def test_pseudonymous_unit_ids() -> None:
    assert pseudonymous_id("user-42") == "user-42"
    a, b = pseudonymous_id("ann@example.com"), pseudonymous_id("bob@example.com")
    assert a.startswith("pii:") and a != b
    assert pseudonymous_id("ann@example.com") == a  # stable
    assert pseudonymous_id(a) == a  # idempotent
