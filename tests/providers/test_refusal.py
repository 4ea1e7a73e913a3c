"""The refusal detector: phrases near the start of an answer, plus configured patterns."""

from __future__ import annotations

import pytest

from abllm.providers.refusal import RefusalDetector


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I'm sorry, but I can't help with that request.", True),
        ("I cannot assist with that.", True),
        ("As an AI language model, I can\u2019t browse the web.", True),
        ("I must decline.", True),
        ("Here is the summary you asked for.", False),
        ("Sure. " + "x" * 400 + " I cannot help with that.", False),
        ("", False),
    ],
)
def test_refusal_detector(text: str, refused: bool) -> None:
    assert RefusalDetector().is_refusal(text) is refused


def test_refusal_extra_patterns() -> None:
    assert RefusalDetector([r"\bnicht möglich\b"]).is_refusal("Das ist nicht möglich.")
