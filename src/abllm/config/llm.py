"""The ``llm`` block of a variant: which provider and model serve it, and with which prompt."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ProviderName = Literal["sim", "openai", "anthropic"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FewShotExample(_Strict):
    """One demonstration turn pair placed before the user's messages."""

    user: str
    assistant: str


class SimProfile(_Strict):
    """Behaviour of the built-in simulated LLM for one variant.

    The simulator is the offline default provider: these knobs let a demo or a test give each
    variant a latency distribution, a time to first token, a token rate, an error rate and a
    quality level that simulated users rate against.
    """

    latency_ms: float = Field(default=300.0, gt=0, description="median total latency")
    latency_sigma: float = Field(default=0.35, ge=0, description="log-normal sigma of latency")
    ttft_ms: float = Field(default=80.0, gt=0, description="median time to first token")
    tokens_per_s: float = Field(default=200.0, gt=0)
    output_tokens: int = Field(default=120, gt=0, description="mean output tokens")
    error_rate: float = Field(default=0.01, ge=0, le=1)
    quality: float = Field(default=3.8, ge=1, le=5, description="mean user rating, 1-5")
    quality_sd: float = Field(default=1.0, ge=0)
    thumbs_up_rate: float | None = Field(default=None, ge=0, le=1)
    task_completion_rate: float = Field(default=0.7, ge=0, le=1)
    time_scale: float = Field(
        default=1.0, ge=0, description="multiply simulated waits; 0 answers at once (tests)"
    )


class ModelPrice(_Strict):
    """A per-model price that overrides the shipped table, in USD per million tokens."""

    input_per_1m: float = Field(ge=0, description="USD per 1M input (prompt) tokens")
    output_per_1m: float = Field(ge=0, description="USD per 1M output (completion) tokens")


class LLMConfig(_Strict):
    """How one variant calls its LLM.

    Fields the experiment does not set pass through from the caller's request (gateway).
    ``system_prompt_mode`` says whether the variant's system prompt replaces the caller's or is
    prepended to it. ``params`` holds extra provider parameters sent as-is.
    """

    provider: ProviderName = "sim"
    model: str = Field(min_length=1)
    system_prompt: str | None = None
    prompt_template: str | None = Field(
        default=None, description="user-message template; {input} is the caller's last message"
    )
    system_prompt_mode: Literal["replace", "prepend"] = "replace"
    prompt_version: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    few_shot: list[FewShotExample] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    base_url: str | None = None
    api_key_env: str | None = Field(
        default=None, description="name of the environment variable that holds the API key"
    )
    timeout_s: float | None = Field(default=None, gt=0)
    sim: SimProfile = Field(default_factory=SimProfile)
    price: ModelPrice | None = Field(
        default=None, description="override the price table for this model (cost_usd)"
    )

    @model_validator(mode="after")
    def _prompt_template_has_input(self) -> LLMConfig:
        if self.prompt_template is not None and "{input}" not in self.prompt_template:
            raise ValueError("prompt_template must contain the placeholder {input}")
        return self
