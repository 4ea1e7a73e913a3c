"""The price table (LiteLLM format) and cost_usd: known, overridden, unknown models."""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path

import pytest

from abllm.config.llm import LLMConfig, ModelPrice
from abllm.providers import cost_usd, price_for, price_table


def _shipped() -> dict[str, dict[str, object]]:
    text = resources.files("abllm.providers").joinpath("prices.json").read_text("utf-8")
    data: dict[str, dict[str, object]] = json.loads(text)
    return data


def test_shipped_file_is_litellm_format_and_covers_common_models() -> None:
    data = _shipped()
    assert "sample_spec" in data
    models = {k: v for k, v in data.items() if k != "sample_spec"}
    for name, entry in models.items():
        for field in (
            "input_cost_per_token",
            "output_cost_per_token",
            "litellm_provider",
            "max_tokens",
            "max_input_tokens",
            "max_output_tokens",
            "mode",
        ):
            assert field in entry, (name, field)
        assert 0 < float(entry["input_cost_per_token"]) < float(entry["output_cost_per_token"])  # type: ignore[arg-type]
    providers = [v["litellm_provider"] for v in models.values()]
    assert providers.count("openai") >= 6 and providers.count("anthropic") >= 6
    assert {"sim-small", "sim-large", "gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-20241022"} <= set(
        models
    )
    assert "sample_spec" not in price_table()


@pytest.mark.parametrize(
    ("model", "per_1m_in", "per_1m_out"),
    [
        ("gpt-4o", 2.50, 10.00),
        ("gpt-4o-mini", 0.15, 0.60),
        ("claude-3-5-sonnet-20241022", 3.00, 15.00),
        ("claude-3-haiku-20240307", 0.25, 1.25),
        ("sim-small", 0.15, 0.60),
        ("sim-large", 2.50, 10.00),
    ],
)
def test_cost_of_known_models(model: str, per_1m_in: float, per_1m_out: float) -> None:
    expected = (1200 * per_1m_in + 300 * per_1m_out) / 1e6
    assert cost_usd(model, 1200, 300) == pytest.approx(expected)
    assert cost_usd(model, 0, 0) == 0.0


def test_provider_prefix_and_date_suffix_resolve() -> None:
    assert price_for("openai/gpt-4o") == price_for("gpt-4o")
    assert price_for("gpt-4o-2024-08-06") == price_for("gpt-4o")
    assert price_for("anthropic/claude-3-5-haiku-20241022") is not None


def test_unknown_model_is_none_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="abllm.providers.prices")
    assert cost_usd("my-local-llama-unpriced", 100, 100) is None
    assert cost_usd("my-local-llama-unpriced", 5, 5) is None
    warnings = [r for r in caplog.records if "my-local-llama-unpriced" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_unknown_usage_is_none() -> None:
    assert cost_usd("gpt-4o", None, 10) is None


def test_overrides_win() -> None:
    price = ModelPrice(input_per_1m=1.0, output_per_1m=2.0)
    assert cost_usd("gpt-4o", 1_000_000, 500_000, price=price) == pytest.approx(2.0)
    assert cost_usd("my-vllm", 1_000_000, 0, {"my-vllm": price}) == pytest.approx(1.0)
    llm = LLMConfig(model="my-vllm", price={"input_per_1m": 0.5, "output_per_1m": 0.5})
    assert cost_usd(llm.model, 2_000_000, 0, price=llm.price) == pytest.approx(1.0)
    assert price_for("my-vllm", price=llm.price).source == "override"  # type: ignore[union-attr]


def test_config_rejects_negative_price() -> None:
    with pytest.raises(ValueError, match="input_per_1m"):
        LLMConfig(model="m", price={"input_per_1m": -1, "output_per_1m": 1})


def test_litellm_file_from_env_extends_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model_prices_and_context_window.json"
    entry = {
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 3e-6,
        "litellm_provider": "openai",
        "max_tokens": 4096,
        "mode": "chat",
    }
    embedding = {"input_cost_per_token": 1e-7, "litellm_provider": "openai", "mode": "embedding"}
    path.write_text(json.dumps({"my-tuned-model": entry, "text-embedding-x": embedding}))
    monkeypatch.setenv("ABLLM_PRICES", str(path))
    assert cost_usd("my-tuned-model", 1000, 1000) == pytest.approx(0.004)
    assert cost_usd("gpt-4o-mini", 1000, 0) == pytest.approx(0.00015)  # shipped ones remain
    assert price_for("text-embedding-x") is None
