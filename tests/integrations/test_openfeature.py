"""``AbllmProvider`` through the official OpenFeature SDK, as an application uses it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.track import TrackingEventDetails
from typer.testing import CliRunner

from abllm import Client
from abllm.cli.main import app as cli
from abllm.config import load_experiments
from abllm.events.schema import COLUMNS, row_to_event
from abllm.openfeature import AbllmProvider

CONFIG = """
experiments:
  - id: exp_tone
    aliases: [tone]
    holdout: 10
    traffic: 80
    forced: {qa-1: warm}
    variants:
      - id: control
        control: true
        llm: {provider: openai, model: gpt-4o-mini, system_prompt: "Be concise.",
              temperature: 0.2}
      - id: warm
        llm: {provider: openai, model: gpt-4o, system_prompt: "Be warm.", temperature: 0.9}
      - id: brief
        llm: {provider: openai, model: gpt-4o-mini, max_tokens: 40}
  - id: exp_target
    version: 3
    targeting:
      - {attribute: country, op: in, value: [FR, DE]}
    variants:
      - id: control
        control: true
        llm: {model: gpt-4o-mini}
      - id: short
        llm: {model: gpt-4o-mini, system_prompt: "Answer in one line."}
"""
OPENFEATURE_REASON = {
    "assigned": Reason.SPLIT,
    "forced": Reason.TARGETING_MATCH,
    "holdout": Reason.DEFAULT,
    "outside_traffic": Reason.DEFAULT,
}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'events.duckdb'}"


@pytest.fixture
def client(config_path: Path, store_url: str, tmp_path: Path) -> Iterator[Client]:
    c = Client(config_path, store=store_url, spool_dir=tmp_path / "spool")
    yield c
    c.close()


@pytest.fixture
def flags(client: Client) -> Iterator[OpenFeatureClient]:
    api.set_provider(AbllmProvider(client))
    yield api.get_client()
    api.shutdown()


def cli_assign(config_path: Path, units_file: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["assign", str(config_path), "-e", "exp_tone", "--units-file", str(units_file)]
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_1000_units_resolve_like_abllm_assign_then_disabled_after_a_kill(
    flags: OpenFeatureClient, client: Client, config_path: Path, store_url: str, tmp_path: Path
) -> None:
    units = [f"user-{i}" for i in range(1000)]
    units_file = tmp_path / "units.txt"
    units_file.write_text("\n".join(units) + "\n")
    expected = cli_assign(config_path, units_file)
    exp = client.experiment("exp_tone")
    seen: set[str] = set()
    for unit, want in zip(units, expected, strict=True):
        d = flags.get_object_details("exp_tone", {}, EvaluationContext(unit))
        assert d.error_code is None, d.error_message
        assert d.variant == want["variant_id"], unit
        assert d.reason == OPENFEATURE_REASON[want["reason"]], (unit, want["reason"])
        served = want["variant_id"] or "control"
        assert d.value == exp.variant(served).llm.model_dump(mode="json", exclude_none=True)
        assert d.flag_metadata["experiment_id"] == "exp_tone"
        assert d.flag_metadata["experiment_version"] == 1
        assert d.flag_metadata["abllm_reason"] == want["reason"]
        seen.add(want["reason"])
    assert seen == {"assigned", "holdout", "outside_traffic"}  # every kind of unit was checked

    # `abllm kill` in another process, against the state beside the store, as for `serve`
    killed = subprocess.run(
        [
            str(Path(sys.executable).with_name("abllm")),
            *("kill", "exp_tone", "--store", store_url, "--config", str(config_path)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == 0, killed.stderr
    default = {"model": "app-default"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the client's StateView polls the state file
        d = flags.get_object_details("exp_tone", default, EvaluationContext("user-0"))
        if d.reason == Reason.DISABLED:
            break
        time.sleep(0.05)
    for unit in units:
        d = flags.get_object_details("exp_tone", default, EvaluationContext(unit))
        assert (d.reason, d.value, d.variant) == (Reason.DISABLED, default, None), unit
        assert d.flag_metadata["abllm_reason"] == "killed"


def test_forced_targeting_and_errors(flags: OpenFeatureClient, client: Client) -> None:
    d = flags.get_object_details("tone", {}, EvaluationContext("qa-1"))  # an alias works too
    assert (d.variant, d.reason) == ("warm", Reason.TARGETING_MATCH)
    assert d.value["model"] == "gpt-4o"  # type: ignore[index,call-overload]

    ctx = EvaluationContext("user-7", {"country": "US"})
    d = flags.get_object_details("exp_target", {}, ctx)
    assert (d.variant, d.reason) == (None, Reason.DEFAULT)  # not targeted: the control's config
    control = client.experiment("exp_target").control.llm
    assert d.value == control.model_dump(mode="json", exclude_none=True)
    assert d.flag_metadata["experiment_version"] == 3
    inside = flags.get_object_details(
        "exp_target", {}, EvaluationContext("user-7", {"country": "FR"})
    )
    assert inside.reason == Reason.SPLIT and inside.variant in ("control", "short")

    missing = flags.get_object_details("nope", {"a": 1}, EvaluationContext("u"))
    assert (missing.value, missing.error_code) == ({"a": 1}, ErrorCode.FLAG_NOT_FOUND)
    no_unit = flags.get_object_details("exp_tone", {"a": 1})
    assert no_unit.error_code == ErrorCode.TARGETING_KEY_MISSING
    as_bool = flags.get_boolean_details("exp_tone", False, EvaluationContext("u"))
    assert (as_bool.value, as_bool.error_code) == (False, ErrorCode.TYPE_MISMATCH)


def test_tracking_records_outcomes_for_the_served_variant(
    flags: OpenFeatureClient, client: Client
) -> None:
    unit = "qa-1"  # forced onto `warm`
    ctx = EvaluationContext(unit)
    flags.get_object_details("exp_tone", {}, ctx)
    flags.track("converted", ctx)
    flags.track("revenue", ctx, TrackingEventDetails(12.5, {"plan": "pro", "items": 3}))
    flags.track(
        "converted",
        EvaluationContext("user-1"),
        TrackingEventDetails(attributes={"experiment_id": "exp_target"}),
    )  # not targeted (no country): out of the experiment, nothing to record
    assert client.flush(10) and client.store is not None
    rows = client.store.query(
        f"SELECT {', '.join(COLUMNS)} FROM abllm_events WHERE type = 'outcome' ORDER BY ts", []
    )
    got = [(e.experiment_id, e.variant_id, e.metrics, e.attrs) for e in map(row_to_event, rows)]
    assert got == [
        ("exp_tone", "warm", {"converted": True}, {}),
        ("exp_tone", "warm", {"items": 3, "revenue": 12.5}, {"plan": "pro"}),
    ]


def test_a_closed_client_makes_a_fatal_provider(config_path: Path, tmp_path: Path) -> None:
    c = Client(load_experiments(config_path), store="duckdb:///:memory:", spool_dir=tmp_path / "s")
    c.close()
    api.set_provider(AbllmProvider(c))
    try:
        d = api.get_client().get_object_details("exp_tone", {"a": 1}, EvaluationContext("u"))
        assert d.error_code == ErrorCode.PROVIDER_FATAL and d.value == {"a": 1}
    finally:
        api.shutdown()


def test_tracking_refuses_what_it_cannot_record(flags: OpenFeatureClient) -> None:
    from abllm.errors import ValidationError

    ctx = EvaluationContext("qa-1")
    flags.get_object_details("exp_tone", {}, ctx)
    with pytest.raises(ValidationError, match="targeting_key"):
        flags.track("converted")
    with pytest.raises(ValidationError, match="items"):
        flags.track("converted", ctx, TrackingEventDetails(attributes={"items": [1, 2]}))


def test_public_path_is_the_integration() -> None:
    import abllm.openfeature
    from abllm.integrations import openfeature as impl

    assert abllm.openfeature.AbllmProvider is impl.AbllmProvider
    assert abllm.openfeature.__all__ == ["AbllmProvider"]
