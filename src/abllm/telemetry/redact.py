"""PII and secret redaction, applied before a prompt, answer or comment is persisted.

Seed 002: "Redaction strategy for prompts/responses (PII, secrets) before persistence". The
patterns are deliberately conservative about what they call a phone or a card number: a card
must pass the Luhn check and a phone needs 9-15 digits in a phone-like layout, so order ids,
dates and timestamps survive. Secrets run first because keys contain digit runs that would
otherwise be mistaken for phone numbers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
API_KEY = "[API_KEY]"

_SECRETS = re.compile(
    r"""
    \bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}      # OpenAI / Anthropic keys
    | \bAKIA[0-9A-Z]{16}\b                        # AWS access key id
    | \bgh[pousr]_[A-Za-z0-9]{30,}\b              # GitHub tokens
    | \bxox[abprs]-[A-Za-z0-9\-]{10,}             # Slack tokens
    | \bAIza[0-9A-Za-z_\-]{35}                    # Google API keys
    | \bBearer\s+[A-Za-z0-9._~+/\-]{16,}=*        # bearer tokens in pasted headers
    | (?:(?<=[=:])|(?<=[=:]\s))[A-Za-z0-9_\-]{32,}\b  # long opaque token after key= / key:
    """,
    re.VERBOSE,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
_PHONE = re.compile(
    r"""
    (?<![\w+])
    (?:
        \+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}   # +CC ...
      | \(\d{3}\)\s?\d{3}[\s.\-]\d{4}                                           # (555) 123-4567
      | \d{3}[\s.\-]\d{3}[\s.\-]\d{4}                                           # 555-123-4567
      | 0\d{2,4}[\s\-]\d{3,4}[\s\-]?\d{3,4}                                     # 020 7946 0958
    )
    (?!\w)
    """,
    re.VERBOSE,
)


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
    digits = re.sub(r"\D", "", match.group(0))
    return CARD if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return PHONE if 9 <= digits <= 15 else match.group(0)


@dataclass(frozen=True)
class Redactor:
    """Replaces emails, phone numbers, card numbers and API keys with placeholders.

    ``extra`` adds (pattern, replacement) pairs for domain identifiers, e.g.
    ``Redactor(extra=((re.compile(r"ACCT-\\d+"), "[ACCOUNT]"),))``.

    >>> Redactor()("mail bob@example.com or call +1 415 555 0100")
    'mail [EMAIL] or call [PHONE]'
    """

    extra: Sequence[tuple[re.Pattern[str], str]] = field(default_factory=tuple)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = _SECRETS.sub(API_KEY, text)
        text = _EMAIL.sub(EMAIL, text)
        text = _CARD.sub(_card, text)
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


def redact(text: str) -> str:
    """Redact one string with the default patterns."""
    return _DEFAULT(text)


def redact_value(value: Any) -> Any:
    """Redact every string in a JSON-like value with the default patterns."""
    return _DEFAULT.value(value)


@lru_cache(maxsize=65_536)
def pseudonymous_id(value: str) -> str:
    """``value`` itself, or ``pii:<hash>`` when it holds PII (a user id that is an email).

    Unit ids must stay distinct and stable for the analysis, so PII in them is replaced by a
    BLAKE2b digest rather than a placeholder: the same email always maps to the same
    id, and two emails never share one (64-bit digest). Plain ids pass unchanged.

    >>> pseudonymous_id("user-42"), pseudonymous_id("bob@example.com")[:4]
    ('user-42', 'pii:')
    """
    if value.startswith("pii:") or redact(value) == value:  # already a pseudonym, or clean
        return value
    return "pii:" + hashlib.blake2b(value.encode(), digest_size=8).hexdigest()
