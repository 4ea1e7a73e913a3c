"""PII and secret redaction, applied before a prompt, answer, comment or id is persisted.

What is found: API keys and tokens (OpenAI/Anthropic ``sk-`` keys, AWS access key ids and secret
keys, GitHub, Slack, Google, bearer tokens, long tokens after ``key=``), emails, IBANs (ISO 13616
mod-97 check), payment cards (Luhn check; spaces, dashes or dots between groups), US social
security numbers, IPv4 and IPv6 addresses (checked by :mod:`ipaddress`) and phone numbers (9-15
digits in a phone-like layout, or a bare 10-digit North American number). The checks keep order
ids, dates, timestamps, versions and hashes intact. Secrets run first because keys contain digit
runs that would otherwise be mistaken for phone numbers.

Linear time: every pattern starts only where a token starts (a look-behind refuses the middle
of a run) and uses possessive quantifiers (Python 3.11, ``++``), so a failed match never
backtracks over a long run — the classic quadratic case of ``[\\w.]+@`` over 80k word characters
took 14 s. Text over :data:`MAX_CHARS` is cut *before* matching, at a token boundary (a cut in
the middle of a card would leave digits that no pattern recognises), and marked ``[TRUNCATED]``.
:func:`redact_async` moves long texts off the event loop onto a small thread pool.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
API_KEY = "[API_KEY]"
IP = "[IP]"
SSN = "[SSN]"
IBAN = "[IBAN]"
TRUNCATED = " [TRUNCATED]"

#: Characters redacted at most; the rest is dropped before matching.
MAX_CHARS = 32_768
#: Ids longer than this are always pseudonymised (see :func:`pseudonymous_id`): the longest id
#: an event can store (``abllm.events.models.MAX_ID_CHARS``), so a long unit id from a header
#: is stored as its pseudonym instead of making the request's events unstorable.
ID_CHARS = 200
#: Texts up to this many characters are redacted inline (a thread hop costs more than that).
INLINE_CHARS = 2_048

_SECRETS = re.compile(
    r"""
    \b(?:AKIA|ASIA)[0-9A-Z]{16}\b               # AWS access key id
    | \bgh[pousr]_[A-Za-z0-9]{30,}+               # GitHub tokens
    | \bxox[abprs]-[A-Za-z0-9\-]{10,}+            # Slack tokens
    | \bAIza[0-9A-Za-z_\-]{35}                    # Google API keys
    | (?i:\bbearer)\s++[A-Za-z0-9._~+/\-]{12,}+=*+  # bearer tokens in pasted headers
    | (?:(?<=[=:])|(?<=[=:]\s))[A-Za-z0-9_\-]{32,}+  # long opaque token after key= / key:
    """,
    re.VERBOSE,
)
# OpenAI / Anthropic keys, short ones too; a digit (or length) tells a key from ``sk-learn-docs``.
_SK = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}+")
# 40 base64 characters standing alone: an AWS secret access key when it mixes cases and
# digits (a git SHA is lowercase hex, so it stays).
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]++@[A-Za-z0-9\-]++(?:\.[A-Za-z0-9\-]++)++"
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d\-.])\d(?:[ \-.]?\d){12,18}(?![\d\-]|\.\d)")
_SSN = re.compile(r"(?<![\d\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d\-])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)")
_PHONE = re.compile(
    r"""
    (?<![\w+])
    (?:
        \+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}   # +CC ...
      | \(\d{3}\)\s?\d{3}[\s.\-]\d{4}                                           # (555) 123-4567
      | \d{3}[\s.\-]\d{3}[\s.\-]\d{4}                                           # 555-123-4567
      | 0\d{2,4}[\s\-]\d{3,4}[\s\-]?\d{3,4}                                     # 020 7946 0958
      | [2-9]\d{2}[2-9]\d{6}                                                    # 4155550100
    )
    (?!\w|\.\d)
    """,
    re.VERBOSE,
)
_NON_DIGITS = re.compile(r"\D")
# What may sit at the end of a cut text and belong to a PII token that the cut split.
_CUT_TAIL = re.compile(r"[\w.+\-()/:@]*+(?:[ .\-][\w.+\-()/:@]++)*+$")


def _luhn_ok(digits: str) -> bool:
    """Luhn mod-10 checksum (ISO/IEC 7812-1), the check every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = _NON_DIGITS.sub("", text)
    if not (13 <= len(digits) <= 19 and _luhn_ok(digits)):
        return text
    if "." in text and not re.fullmatch(r"\d{4}(?:\.\d{4}){2,3}(?:\.\d{1,3})?", text):
        return text  # a dotted number is a card only in groups of four (not 1234567.123456789)
    return CARD


def _phone(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return PHONE if 9 <= digits <= 15 else match.group(0)


def _sk(match: re.Match[str]) -> str:
    text = match.group(0)
    return API_KEY if len(text) >= 24 or any(c.isdigit() for c in text) else text


def _aws_secret(match: re.Match[str]) -> str:
    text = match.group(0)
    mixed = any(c.isupper() for c in text) and any(c.islower() for c in text)
    return API_KEY if mixed and any(c.isdigit() or c in "/+" for c in text) else text


def _email(match: re.Match[str]) -> str:
    text = match.group(0)
    tld = text.rsplit(".", 1)[1]
    return EMAIL if len(tld) >= 2 and tld.isalpha() else text


def _iban(match: re.Match[str]) -> str:
    """ISO 13616 check: move the first four characters to the end, letters to 10..35, mod 97."""
    compact = match.group(0).replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return match.group(0)
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return IBAN if int(number) % 97 == 1 else match.group(0)


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text
    return IP


def cut(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters without splitting a PII token.

    The last token before the cut (and a run of digit groups before it: a card or a phone with
    spaces) is dropped too, because half a card number matches no pattern.
    """
    if len(text) <= limit:
        return text
    head = text[:limit]
    window = head[-96:]
    tail = _CUT_TAIL.search(window)
    if tail is not None:
        head = head[: len(head) - len(window) + tail.start()]
    return head + TRUNCATED


@dataclass(frozen=True)
class Redactor:
    """Replaces API keys, emails, IBANs, cards, SSNs, IP addresses and phones with placeholders.

    ``extra`` adds (pattern, replacement) pairs for domain identifiers, e.g.
    ``Redactor(extra=((re.compile(r"ACCT-\\d+"), "[ACCOUNT]"),))``; they run after the built-in
    patterns and must be linear-time themselves.

    >>> Redactor()("mail bob@example.com or call +1 415 555 0100")
    'mail [EMAIL] or call [PHONE]'
    """

    extra: Sequence[tuple[re.Pattern[str], str]] = field(default_factory=tuple)
    max_chars: int = MAX_CHARS

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = cut(text, self.max_chars)
        text = _SK.sub(_sk, text)
        text = _SECRETS.sub(API_KEY, text)
        text = _AWS_SECRET.sub(_aws_secret, text)
        text = _EMAIL.sub(_email, text)
        text = _IBAN.sub(_iban, text)
        text = _CARD.sub(_card, text)
        text = _SSN.sub(SSN, text)
        text = _IPV6.sub(_ipv6, text)
        text = _IPV4.sub(IP, text)
        text = _PHONE.sub(_phone, text)
        for pattern, replacement in self.extra:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """Redact every string inside nested dicts, lists and tuples; other values unchanged."""
        return _walk(value, self)


def _walk(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: _walk(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, fn) for v in value]
    return value


_DEFAULT = Redactor()
_POOL: ThreadPoolExecutor | None = None


def redact(text: str) -> str:
    """Redact one string with the default patterns."""
    return _DEFAULT(text)


def redact_value(value: Any) -> Any:
    """Redact every string in a JSON-like value with the default patterns."""
    return _DEFAULT.value(value)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="abllm-redact")
    return _POOL


async def redact_async(text: str) -> str:
    """:func:`redact` for code on the event loop: long texts run on a two-thread pool.

    ``re`` holds the GIL while it matches, so the loop still shares the CPU with the worker,
    but it gets a turn every switch interval (5 ms) instead of waiting for the whole text.
    """
    if len(text) <= INLINE_CHARS:
        return _DEFAULT(text)
    return await asyncio.get_running_loop().run_in_executor(_pool(), _DEFAULT, text)


def run_off_loop(fn: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run ``fn()`` (which redacts long texts) on the redaction pool; a future for its result."""
    return asyncio.get_running_loop().run_in_executor(_pool(), fn)


def pii_kind(text: str) -> str | None:
    """The placeholder of the first kind of PII or secret found in ``text`` (None: clean).

    For validation that must refuse PII rather than replace it (ids, metric names):

    >>> pii_kind("trace-42"), pii_kind("bob@example.com")
    (None, '[EMAIL]')
    """
    redacted = _DEFAULT(text)
    if redacted == text:
        return None
    for placeholder in (API_KEY, EMAIL, IBAN, CARD, SSN, IP, PHONE, TRUNCATED.strip()):
        if placeholder in redacted and placeholder not in text:
            return placeholder
    return "[PII]"


# W3C trace ids (32 hex) and UUIDs are opaque by construction: their digit runs are chance.
_OPAQUE_ID = re.compile(
    r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


@lru_cache(maxsize=4096)
def _named_pii(value: str) -> str | None:
    return pii_kind(value)


def reject_pii(value: str, field: str) -> str:
    """``value`` unchanged, or ``ValueError`` naming ``field`` when it holds PII or a secret.

    For ids and names that are stored as they are and must stay joinable (trace ids, metric
    names): replacing part of them would silently break the join, so they are refused. The
    message names the kind found, never the value.

    >>> reject_pii("4bf92f3577b34da6a3ce929d0e0e4736", "trace_id")
    '4bf92f3577b34da6a3ce929d0e0e4736'
    """
    if _OPAQUE_ID.fullmatch(value):
        return value
    kind = _named_pii(value) if len(value) <= ID_CHARS else "[TRUNCATED]"
    if kind is not None:
        raise ValueError(f"{field} must not hold personal data or secrets (found {kind})")
    return value


@lru_cache(maxsize=65_536)
def pseudonymous_id(value: str) -> str:
    """``value`` itself, or ``pii:<hash>`` when it holds PII (a user id that is an email).

    Unit ids must stay distinct and stable for the analysis, so PII in them is replaced by a
    BLAKE2b digest rather than a placeholder: the same email always maps to the same
    id, and two emails never share one (64-bit digest). Plain ids pass unchanged.

    An id over :data:`ID_CHARS` characters is hashed without being scanned: no honest id is
    that long, and hashing costs far less than matching.

    >>> pseudonymous_id("user-42"), pseudonymous_id("bob@example.com")[:4]
    ('user-42', 'pii:')
    """
    if value.startswith("pii:"):  # already a pseudonym
        return value
    if len(value) <= ID_CHARS and redact(value) == value:  # clean
        return value
    return "pii:" + hashlib.blake2b(value.encode(), digest_size=8).hexdigest()
