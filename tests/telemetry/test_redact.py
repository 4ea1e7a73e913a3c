import asyncio
import re
import threading
import time

import pytest

from abllm.telemetry import Redactor, pseudonymous_id, redact, redact_value
from abllm.telemetry.redact import MAX_CHARS, cut, pii_kind, redact_async, reject_pii


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
        # the coverage gaps found in production
        ("from 192.168.10.23 today", "from [IP] today"),
        ("v6 2001:db8:85a3::8a2e:370:7334 and ::1", "v6 [IP] and [IP]"),
        ("ssn 078-05-1120 on file", "ssn [SSN] on file"),
        ("iban DE89 3704 0044 0532 0130 00 ok", "iban [IBAN] ok"),
        ("iban GB82WEST12345698765432", "iban [IBAN]"),
        ("aws_secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end", "aws_secret [API_KEY] end"),
        ("short key sk-abc123XYZ", "short key [API_KEY]"),
        ("authorization: bearer abc123def456ghi789", "authorization: [API_KEY]"),
        ("call 4155550100 now", "call [PHONE] now"),
        ("card 4111.1111.1111.1111 please", "card [CARD] please"),
        ("card 4111111111111111.", "card [CARD]."),
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
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a git SHA is not an AWS secret
        "pi is 3.14159265358979323 roughly",
        "at 10:30:00 in std::vector",
        "unix time 1700000000 and sk-learn-docs",
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


@pytest.mark.parametrize("unit", ["a", "1", "a.", "a@", "1 ", "=a", "+1 ", "ab:", "1.", "a@b."])
def test_linear_time_on_hostile_runs(unit: str) -> None:
    """80k characters of one repeated token took 14 s with backtracking patterns."""
    r = Redactor(max_chars=10**6)
    text = unit * (80_000 // len(unit))
    started = time.perf_counter()
    r(text)
    assert time.perf_counter() - started < 1.0


def test_long_text_is_cut_before_matching_without_splitting_a_card() -> None:
    card = "4111 1111 1111 1111"
    text = "x " * ((MAX_CHARS - 8) // 2) + card + " tail"
    out = redact(text)
    assert out.endswith("[TRUNCATED]")
    assert "4111" not in out and "1111" not in out
    assert len(out) <= MAX_CHARS + len(" [TRUNCATED]")
    assert cut("short") == "short"


def test_pii_kind_and_reject_pii() -> None:
    assert pii_kind("order-77") is None
    assert pii_kind("mail bob@example.com") == "[EMAIL]"
    assert reject_pii("4bf92f3577b34da6a3ce929d0e0e4736", "trace_id")
    with pytest.raises(ValueError, match=r"trace_id .*\[EMAIL\]") as err:
        reject_pii("bob@example.com", "trace_id")
    assert "bob" not in str(err.value)


def test_long_ids_are_pseudonymised_without_scanning() -> None:
    long_id = "u" * 60_000
    started = time.perf_counter()
    assert pseudonymous_id(long_id).startswith("pii:")
    assert time.perf_counter() - started < 0.05


def test_redact_async_runs_long_texts_off_the_loop() -> None:
    seen: list[str] = []
    real = Redactor.__call__

    def spy(self: Redactor, text: str) -> str:
        seen.append(threading.current_thread().name)
        return real(self, text)

    async def main() -> tuple[str, str]:
        return await redact_async("a@b.io " * 1000), await redact_async("a@b.io")

    Redactor.__call__ = spy  # type: ignore[method-assign]
    try:
        long, short = asyncio.run(main())
    finally:
        Redactor.__call__ = real  # type: ignore[method-assign]
    assert long.startswith("[EMAIL] [EMAIL]") and short == "[EMAIL]"
    assert seen[0].startswith("abllm-redact") and seen[1] == threading.current_thread().name
