"""Providers by name, pooled: one instance (one aiohttp session) per provider and base URL."""

from __future__ import annotations

from abllm.config.llm import LLMConfig, ProviderName
from abllm.errors import ConfigError
from abllm.providers.anthropic_messages import AnthropicProvider
from abllm.providers.base import Provider
from abllm.providers.openai_compat import OpenAIProvider
from abllm.providers.sim import SimProvider


def get_provider(name: ProviderName, base_url: str | None = None, *, limit: int = 256) -> Provider:
    """A new, unshared provider; prefer :class:`ProviderRegistry` on a hot path.

    ``limit`` caps the pooled connections to the upstream.

    >>> get_provider("sim").name
    'sim'
    """
    if name == "sim":
        return SimProvider()
    if name == "openai":
        return OpenAIProvider(base_url, limit=limit)
    if name == "anthropic":
        return AnthropicProvider(base_url, limit=limit)
    raise ConfigError([f"llm.provider: unknown provider {name!r} (sim, openai, anthropic)"])


class ProviderRegistry:
    """The providers a process uses, keyed by ``(llm.provider, llm.base_url)``.

    Variants that share an upstream share its connection pool. Call :meth:`aclose` on shutdown.

    >>> reg = ProviderRegistry()
    >>> a = reg.get(LLMConfig(provider="openai", model="m", base_url="http://h/v1"))
    >>> a is reg.get(LLMConfig(provider="openai", model="other", base_url="http://h/v1"))
    True
    """

    def __init__(self, *, limit: int = 256) -> None:
        self._limit = limit
        self._providers: dict[tuple[str, str | None], Provider] = {}

    def get(self, llm: LLMConfig) -> Provider:
        """The shared provider serving this ``llm`` block."""
        key = (llm.provider, None if llm.provider == "sim" else llm.base_url)
        provider = self._providers.get(key)
        if provider is None:
            provider = get_provider(llm.provider, llm.base_url, limit=self._limit)
            self._providers[key] = provider
        return provider

    async def aclose(self) -> None:
        """Close every pooled session."""
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
