"""Model prices and the cost of a call.

The table ships as ``prices.json`` in LiteLLM's ``model_prices_and_context_window.json`` format
(``input_cost_per_token``, ``output_cost_per_token``, ``litellm_provider``, ``max_tokens``, ...),
so LiteLLM's full file can be dropped in: set ``ABLLM_PRICES`` to its path and its entries extend
(and override) the shipped ones. A variant's ``llm.price`` overrides both.

An unknown model costs ``None`` (stored as null) with one warning per model, never 0: a zero
would silently make the unknown arm look free in a cost comparison.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from abllm.config.llm import ModelPrice
from abllm.errors import ConfigError

log = logging.getLogger("abllm.providers.prices")

PRICES_ENV = "ABLLM_PRICES"
_PREFIX = re.compile(r"^(openai|anthropic|azure|sim)/")
_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_warned: set[str] = set()


@dataclass(frozen=True)
class Price:
    """One model's price per token (USD) and limits, as in LiteLLM's table."""

    model: str
    input_cost_per_token: float
    output_cost_per_token: float
    litellm_provider: str | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    source: str = "table"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for one call with these token counts."""
        return input_tokens * self.input_cost_per_token + output_tokens * self.output_cost_per_token

    @classmethod
    def from_override(cls, model: str, price: ModelPrice) -> Price:
        """A config override (USD per million tokens) as a per-token price."""
        return cls(
            model=model,
            input_cost_per_token=price.input_per_1m / 1e6,
            output_cost_per_token=price.output_per_1m / 1e6,
            source="override",
        )


def _entry(model: str, raw: Any, source: str) -> Price | None:
    if not isinstance(raw, dict):
        return None
    inp, out = raw.get("input_cost_per_token"), raw.get("output_cost_per_token")
    if not isinstance(inp, int | float) or not isinstance(out, int | float):
        return None  # image and audio models priced per image or second
    max_in = raw.get("max_input_tokens")
    max_out = raw.get("max_output_tokens", raw.get("max_tokens"))
    return Price(
        model=model,
        input_cost_per_token=float(inp),
        output_cost_per_token=float(out),
        litellm_provider=raw.get("litellm_provider"),
        max_input_tokens=max_in if isinstance(max_in, int) else None,
        max_output_tokens=max_out if isinstance(max_out, int) else None,
        source=source,
    )


def parse_prices(data: Mapping[str, Any], source: str = "table") -> dict[str, Price]:
    """Prices from a LiteLLM-format mapping; entries without per-token costs are skipped."""
    prices = {}
    for model, raw in data.items():
        if model == "sample_spec":  # LiteLLM's documentation entry, not a model
            continue
        entry = _entry(model, raw, source)
        if entry is not None:
            prices[model] = entry
    return prices


def load_prices(path: str | Path) -> dict[str, Price]:
    """Read a LiteLLM-format JSON price file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{PRICES_ENV}: cannot read price file {path}: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{PRICES_ENV}: price file {path} must hold a JSON object"])
    return parse_prices(data, source=str(path))


@cache
def _table(extra_path: str | None) -> dict[str, Price]:
    shipped = resources.files("abllm.providers").joinpath("prices.json").read_text("utf-8")
    prices = parse_prices(json.loads(shipped))
    if extra_path:
        prices.update(load_prices(extra_path))
    return prices


def price_table() -> dict[str, Price]:
    """The shipped table, extended by the file ``ABLLM_PRICES`` names (read once per path)."""
    return _table(os.environ.get(PRICES_ENV) or None)


def price_for(
    model: str,
    overrides: Mapping[str, ModelPrice] | None = None,
    *,
    price: ModelPrice | None = None,
) -> Price | None:
    """The price of ``model``: ``price`` (the variant's ``llm.price``), then ``overrides[model]``,
    then the table by exact name, without a ``provider/`` prefix, then without a date suffix
    (``gpt-4o-2024-08-06`` → ``gpt-4o``). None when unknown.

    >>> price_for("openai/gpt-4o-mini").input_cost_per_token * 1e6
    0.15
    """
    if price is not None:
        return Price.from_override(model, price)
    if overrides and model in overrides:
        return Price.from_override(model, overrides[model])
    table = price_table()
    bare = _PREFIX.sub("", model)
    for name in (model, bare, _DATE.sub("", bare)):
        if name in table:
            return table[name]
    return None


def cost_usd(
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    overrides: Mapping[str, ModelPrice] | None = None,
    *,
    price: ModelPrice | None = None,
) -> float | None:
    """USD cost of one call, or None when the model's price or the token counts are unknown.

    An unknown model logs one warning per model name (never returns 0).

    >>> round(cost_usd("claude-3-5-haiku-20241022", 1000, 500), 6)
    0.0028
    """
    entry = price_for(model, overrides, price=price)
    if entry is None:
        if model not in _warned:
            _warned.add(model)
            log.warning(
                "no price for model %r: cost_usd is null; add it under llm.price or in %s",
                model,
                PRICES_ENV,
            )
        return None
    if input_tokens is None or output_tokens is None:
        return None
    return entry.cost(input_tokens, output_tokens)
