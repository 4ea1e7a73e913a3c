"""The package's public names and the doctests in its modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

import abllm.providers

MODULES = [
    "abllm.providers.base",
    "abllm.providers.sim",
    "abllm.providers.openai_compat",
    "abllm.providers.anthropic_messages",
    "abllm.providers.registry",
    "abllm.providers.resilience",
    "abllm.providers.prices",
]


def test_exported_members() -> None:
    names = abllm.providers.__all__
    assert len(names) == len(set(names))
    agreed = {
        "Provider",
        "ChatRequest",
        "ChatResponse",
        "StreamChunk",
        "get_provider",
        "ProviderRegistry",
        "price_for",
        "cost_usd",
    }
    assert agreed <= set(names)
    assert all(hasattr(abllm.providers, n) for n in names)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
