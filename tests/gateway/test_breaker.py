"""Callers cannot trip the breaker for everyone: bad parameters are 400s, a caller's 4xx never
counts, and one arm's failures never open the breaker of the arms that share its model."""

from __future__ import annotations

import openai
import pytest

from abllm.gateway import GatewaySettings, ResilienceSettings

from .http import Reply
from .http import post as http_post

SIM = """
experiments:
  - id: exp_sim
    variants:
      - id: control
        control: true
        llm: {model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""
SHARED = """
experiments:
  - id: exp_shared
    max_retries: 0
    fallback_to_control: false
    variants:
      - id: control
        control: true
        llm: {provider: openai, model: gpt-4o-mini, base_url: BASE/v1}
      - id: treatment
        llm: {provider: openai, model: gpt-4o-mini, base_url: BASE/v1,
              params: {fake_mode: "MODE"}}
"""
FIVE = GatewaySettings(resilience=ResilienceSettings(breaker_failures=5, breaker_reset_s=30))
MESSAGES = [{"role": "user", "content": "hello there"}]


def post(gw, body: dict) -> Reply:
    return http_post(f"{gw.url}/v1/chat/completions", body)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_max_tokens_zero_five_times_is_400_and_control_users_still_served(
    live, stream: bool
) -> None:
    gw = live(SIM, FIVE)
    control_unit = gw.unit_for("exp_sim", "control")
    for i in range(6):
        body = {"model": "exp_sim", "messages": MESSAGES, "user": f"user-{i}", "max_tokens": 0}
        resp = post(gw, {**body, "stream": stream})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == "max_tokens"
    for _ in range(3):
        ok = post(gw, {"model": "exp_sim", "messages": MESSAGES, "user": control_unit})
        assert ok.status_code == 200, ok.text
    states = gw.app.state.abllm.gateway.breakers.states()
    assert set(states.values()) <= {"closed"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", 0),
        ("max_tokens", -3),
        ("max_tokens", 1.5),
        ("max_tokens", True),
        ("max_completion_tokens", 0),
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("temperature", "hot"),
        ("top_p", 1.01),
        ("top_p", -1),
        ("n", 0),
        ("n", 129),
        ("presence_penalty", 3),
        ("frequency_penalty", -2.5),
        ("top_logprobs", 21),
        ("logprobs", "yes"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_out_of_range_parameters_get_a_400_naming_the_field(
    live, field: str, value: object, stream: bool
) -> None:
    gw = live(SIM, FIVE)
    body = {"model": "exp_sim", "messages": MESSAGES, "user": "u1", field: value}
    resp = post(gw, {**body, "stream": stream})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == field
    assert field in error["message"]


def test_in_range_edges_are_accepted(live) -> None:
    gw = live(SIM, FIVE)
    body = {"model": "exp_sim", "messages": MESSAGES, "user": "u1", "max_tokens": 1}
    extremes = {"temperature": 2, "top_p": 0, "n": 1, "presence_penalty": -2}
    assert post(gw, {**body, **extremes}).status_code == 200


def test_a_callers_upstream_4xx_never_opens_the_breaker(live, fake) -> None:
    gw = live(SHARED.replace("MODE", "400"), FIVE)
    treated = gw.unit_for("exp_shared", "treatment")
    for _ in range(8):
        with pytest.raises(openai.BadRequestError):
            gw.client.chat.completions.create(model="exp_shared", messages=MESSAGES, user=treated)
    assert len(fake.calls("gpt-4o-mini")) == 8  # every call reached the upstream: never open
    assert "open" not in gw.app.state.abllm.gateway.breakers.states().values()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_treatment_erroring_on_controls_model_leaves_control_users_served(
    live, fake, stream: bool
) -> None:
    """The treatment's own params make the shared model fail: only its breaker opens."""
    gw = live(SHARED.replace("MODE", "500"), FIVE)
    treated = gw.unit_for("exp_shared", "treatment")
    control = gw.unit_for("exp_shared", "control")
    codes = []
    for _ in range(7):
        with pytest.raises(openai.APIStatusError) as err:
            resp = gw.client.chat.completions.create(
                model="exp_shared", messages=MESSAGES, user=treated, stream=stream
            )
            if stream:
                list(resp)
        codes.append(err.value.status_code)
    assert codes[:5] == [502] * 5 and codes[5:] == [503, 503]  # the treatment's breaker opened
    for _ in range(5):
        answer = gw.client.chat.completions.create(
            model="exp_shared", messages=MESSAGES, user=control, stream=stream
        )
        text = (
            "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
            if stream
            else answer.choices[0].message.content
        )
        assert text == "echo: hello there"
    states = gw.app.state.abllm.gateway.breakers.states()
    assert states[next(k for k in states if k.startswith("exp_shared/treatment:"))] == "open"
    assert states[next(k for k in states if k.startswith("exp_shared/control:"))] == "closed"
