"""Upstream faults: 500s, timeouts, malformed JSON, dropped streams, schema failures, breaker."""

from __future__ import annotations

import time

import openai
import pytest

from abllm.gateway import GatewaySettings, ResilienceSettings

CONFIG = """
experiments:
  - id: exp_f
    timeout_s: 1.0
    max_retries: 2
    variants:
      - id: control
        control: true
        llm: {provider: openai, model: gpt-4o-mini, base_url: BASE/v1}
      - id: treatment
        llm: {provider: openai, model: gpt-4o, base_url: BASE/v1}
"""
SCHEMA_CONFIG = """
experiments:
  - id: exp_s
    output_schema: {type: object, required: [answer], properties: {answer: {type: string}}}
    variants:
      - id: control
        control: true
        llm: {provider: openai, model: gpt-4o-mini, base_url: BASE/v1}
      - id: treatment
        llm: {provider: openai, model: gpt-4o, base_url: BASE/v1}
"""
FAST = GatewaySettings(
    resilience=ResilienceSettings(
        breaker_failures=3, breaker_reset_s=0.3, backoff_base_s=0.001, backoff_max_s=0.002
    )
)
MESSAGES = [{"role": "user", "content": "hello there"}]
CONTROL_ANSWER = "echo: hello there"


def ask(gw, unit: str, stream: bool, model: str = "exp_f") -> tuple[dict, str]:
    raw = gw.client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, user=unit, stream=stream
    )
    result = raw.parse()
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in result if c.choices)
    else:
        text = result.choices[0].message.content
    return dict(raw.headers), text


def only_call(gw):
    (call,) = gw.events.of("llm_call")
    return call


@pytest.mark.parametrize(
    ("stream", "mode", "error_type", "treatment_calls"),
    [
        (False, "500", "upstream_5xx", 3),
        (True, "500", "upstream_5xx", 3),
        (False, "slow", "timeout", 1),
        (True, "slow", "timeout", 1),
        (False, "malformed", "bad_response", 1),
        (True, "malformed_chunk", "bad_response", 1),
    ],
)
def test_treatment_failure_falls_back_to_control(
    live, fake, stream, mode, error_type, treatment_calls
) -> None:
    gw = live(CONFIG, FAST)
    fake.modes["gpt-4o"] = mode
    unit = gw.unit_for("exp_f", "treatment")
    started = time.monotonic()
    headers, text = ask(gw, unit, stream)
    assert time.monotonic() - started < 1.5  # within the 1 s budget (plus client overhead)
    assert text.endswith(CONTROL_ANSWER)  # a bad chunk mid-stream: the control continues
    assert headers["x-abllm-variant"] == "treatment"
    if mode != "malformed_chunk":  # failed before the first chunk: the status could still say so
        assert text == CONTROL_ANSWER
        assert headers["x-abllm-fallback"] == "true"
    assert len(fake.calls("gpt-4o")) == treatment_calls
    assert len(fake.calls("gpt-4o-mini")) == 1
    call = only_call(gw)
    assert call.variant_id == "treatment"  # the failure counts against the treatment
    assert call.metrics["error"] is True
    assert call.metrics["fallback"] is True
    assert call.attrs["error_type"] == error_type
    assert call.attrs["fallback_model"] == "gpt-4o-mini"
    assert call.metrics["output_tokens"] == 7  # the control's answer


def test_rate_limit_is_retried(live, fake) -> None:
    gw = live(CONFIG, FAST)
    fake.script["gpt-4o"] = ["429"]
    unit = gw.unit_for("exp_f", "treatment")
    headers, _text = ask(gw, unit, False)
    assert "x-abllm-fallback" not in headers
    call = only_call(gw)
    assert call.metrics["error"] is False
    assert call.attrs["attempts"] == 2


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_dropped_connection_falls_back(live, fake, stream) -> None:
    gw = live(CONFIG, FAST)
    fake.modes["gpt-4o"] = "drop"
    unit = gw.unit_for("exp_f", "treatment")
    _headers, text = ask(gw, unit, stream)
    # A stream dropped after some chunks continues with the control's full answer.
    assert text.endswith(CONTROL_ANSWER)
    call = only_call(gw)
    assert call.metrics["error"] is True and call.metrics["fallback"] is True
    assert call.attrs["error_type"] in ("connection", "bad_response")


def test_no_fallback_for_control_gives_error_and_event(live, fake) -> None:
    gw = live(CONFIG, FAST)
    fake.modes["gpt-4o-mini"] = "500"
    unit = gw.unit_for("exp_f", "control")
    with pytest.raises(openai.APIStatusError) as err:
        ask(gw, unit, False)
    assert err.value.status_code == 502
    assert err.value.response.headers["x-abllm-variant"] == "control"
    call = only_call(gw)
    assert call.metrics["error"] is True and call.metrics["fallback"] is False


def test_mid_stream_failure_without_fallback_ends_with_error_event(live, fake) -> None:
    gw = live(CONFIG, FAST)
    fake.modes["gpt-4o-mini"] = "drop"
    unit = gw.unit_for("exp_f", "control")
    with pytest.raises(openai.APIError):
        ask(gw, unit, True)
    call = only_call(gw)
    assert call.metrics["error"] is True and call.metrics["fallback"] is False


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_schema_failure_falls_back(live, fake, stream) -> None:
    gw = live(SCHEMA_CONFIG, FAST)
    fake.modes["gpt-4o-mini"] = "json"  # the control answers valid JSON, the treatment text
    treated = gw.unit_for("exp_s", "treatment")
    _, text = ask(gw, treated, stream, model="exp_s")
    assert '"answer"' in text
    call = only_call(gw)
    assert call.metrics["schema_valid"] is False
    assert call.metrics["fallback"] is True
    assert call.attrs["error_type"] == "schema_invalid"
    # Both calls were paid for.
    assert call.metrics["output_tokens"] == 14

    fake.modes["gpt-4o"] = "json"
    ask(gw, treated, stream, model="exp_s")
    assert gw.events.of("llm_call")[-1].metrics["schema_valid"] is True


def test_breaker_opens_and_half_opens(live, fake) -> None:
    gw = live(CONFIG.replace("max_retries: 2", "max_retries: 0"), FAST)
    fake.modes["gpt-4o"] = "500"
    unit = gw.unit_for("exp_f", "treatment")
    for _ in range(3):
        assert ask(gw, unit, False)[1] == CONTROL_ANSWER
    assert len(fake.calls("gpt-4o")) == 3
    # Open: the treatment's upstream is not called, the control answers at once.
    ask(gw, unit, False)
    assert len(fake.calls("gpt-4o")) == 3
    assert gw.events.of("llm_call")[-1].attrs["error_type"] == "circuit_open"
    metrics = gw.app.state.abllm.gateway.metrics.render().decode()
    assert 'abllm_breaker_open{breaker="exp_f/treatment:openai@' in metrics
    assert 'gpt-4o"} 1.0' in metrics
    # Half-open after the reset delay: one trial; it fails, so the breaker opens again.
    time.sleep(0.35)
    ask(gw, unit, False)
    assert len(fake.calls("gpt-4o")) == 4
    ask(gw, unit, False)
    assert len(fake.calls("gpt-4o")) == 4
    # The upstream recovers: the next trial succeeds and closes the breaker.
    fake.modes["gpt-4o"] = "ok"
    time.sleep(0.35)
    headers, _ = ask(gw, unit, True)
    assert "x-abllm-fallback" not in headers
    ask(gw, unit, False)
    assert len(fake.calls("gpt-4o")) == 6


def test_client_leaving_mid_stream_is_measured_and_frees_the_upstream(live, fake) -> None:
    gw = live(CONFIG, FAST)
    fake.modes["gpt-4o-mini"] = "slow_stream"
    unit = gw.unit_for("exp_f", "control")
    started = time.monotonic()
    stream = gw.client.chat.completions.create(
        model="exp_f", messages=MESSAGES, user=unit, stream=True
    )
    first = next(iter(stream))
    assert first.choices
    stream.close()  # the caller goes away while the upstream pauses
    deadline = time.monotonic() + 1.5
    while not gw.events.of("llm_call"):
        assert time.monotonic() < deadline, "the abandoned stream was not measured"
        time.sleep(0.02)
    call = only_call(gw)
    assert call.attrs["client_aborted"] is True
    assert call.metrics["error"] is False
    assert time.monotonic() - started < fake.slow_s
    # The gateway is healthy and the breaker did not count the caller's exit as a failure.
    fake.modes["gpt-4o-mini"] = "ok"
    assert ask(gw, unit, True)[1] == CONTROL_ANSWER


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_upstream_error_text_is_redacted_before_it_is_cut(live, fake, stream) -> None:
    gw = live(CONFIG, FAST)
    fake.modes["gpt-4o-mini"] = "500_pii"
    unit = gw.unit_for("exp_f", "control")
    with pytest.raises(openai.APIStatusError) as err:
        ask(gw, unit, stream)
    message = gw.events.of("llm_call")[-1].attrs["error_message"]
    for text in (message, err.value.response.text):
        assert "1111" not in text and "4111" not in text and "ann@" not in text
    assert "[CARD]" in message
