"""Turning a feedback request into a ``feedback`` event for the right variant."""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic_core

from abllm.errors import NotFound, StoreUnavailable, ValidationError
from abllm.events import Event, EventStore, parse_event
from abllm.events.models import check_id
from abllm.gateway import Gateway, TraceInfo
from abllm.gateway.model import HOLDOUT
from abllm.telemetry import pseudonymous_id, redact

#: Keys with a meaning of their own; every other key is a metric (number/bool) or an attribute.
_RESERVED = frozenset(
    {"trace_id", "experiment_id", "unit_id", "variant_id", "event_id", "ts", "attrs", "metrics"}
)
_MAX_BODY = 32 * 1024
#: Longest text attribute (a comment) in a feedback body.
MAX_TEXT_CHARS = 2000


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; 400 naming the problem otherwise."""
    if len(raw) > _MAX_BODY:
        raise ValidationError(f"body: {len(raw)} bytes is over the limit of {_MAX_BODY} bytes")
    try:
        body = pydantic_core.from_json(raw)  # integers of any size: refused later by name
    except ValueError as exc:
        raise ValidationError(f"body: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ValidationError("body: must be a JSON object")
    return body


def _trace_from_store(store: EventStore | None, trace_id: str) -> TraceInfo | None:
    if store is None:
        return None
    rows = store.query(
        "SELECT experiment_id, experiment_version, variant_id, unit_id FROM abllm_events "
        "WHERE trace_id = ? AND type IN ('llm_call', 'exposure') LIMIT 1",
        [trace_id],
    )
    if not rows:
        return None
    exp_id, version, variant_id, unit_id = rows[0]
    # The gateway stores events only for units it counts (an arm or the holdback).
    return TraceInfo(str(exp_id), int(version), variant_id, unit_id, True)


#: Longest wait for a trace id lookup in the store; past it the caller gets 503 (retry later).
TRACE_LOOKUP_WAIT_S = 5.0


async def _trace_lookup(store: EventStore | None, trace_id: str) -> TraceInfo | None:
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_trace_from_store, store, trace_id), TRACE_LOOKUP_WAIT_S
        )
    except TimeoutError:
        raise StoreUnavailable(
            f"trace_id: the event store did not answer within {TRACE_LOOKUP_WAIT_S:g} s; retry"
        ) from None


def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    given = body.get("metrics")
    if given is not None and not isinstance(given, dict):
        raise ValidationError('metrics: must be an object such as {"rating": 4}')
    metrics: dict[str, Any] = dict(given or {})
    attrs: dict[str, Any] = {}
    extra_attrs = body.get("attrs") or {}
    if not isinstance(extra_attrs, dict):
        raise ValidationError("attrs: must be an object")
    for key, value in [*body.items(), *extra_attrs.items()]:
        if key in _RESERVED:
            continue
        if isinstance(value, bool | int | float) or value is None:
            if key in extra_attrs:
                attrs[key] = value
            else:
                metrics[key] = value
        elif isinstance(value, str):
            if len(value) > MAX_TEXT_CHARS:  # refused, not cut: cutting could split a secret
                raise ValidationError(
                    f"{key}: {len(value)} characters is over the limit of {MAX_TEXT_CHARS}"
                )
            attrs[key] = redact(value)
        else:
            raise ValidationError(f"{key}: must be a number, a boolean or a string")
    return metrics, attrs


async def build_feedback_event(
    body: dict[str, Any], gateway: Gateway, store: EventStore | None
) -> Event | None:
    """The feedback event, or None when the unit is outside the experiment's analysis.

    Units in the holdback are recorded with no variant, like their exposure, so the holdback
    report (``abllm.analysis.holdback``) can compare them with everyone exposed.
    """
    trace_id = body.get("trace_id")
    if trace_id is not None:
        if not isinstance(trace_id, str):
            raise ValidationError("trace_id: must be a non-empty string")
        check_id(trace_id, "trace_id")
        info = gateway.trace(trace_id) or await _trace_lookup(store, trace_id)
        if info is None:
            raise NotFound(f"trace_id {trace_id!r} is not a request this gateway served")
        if not info.counted or info.unit_id is None:
            return None
        exp_id, version, variant_id, unit_id = (
            info.experiment_id,
            info.experiment_version,
            info.variant_id,
            info.unit_id,
        )
    else:
        raw_exp, raw_unit = body.get("experiment_id"), body.get("unit_id")
        if not isinstance(raw_exp, str) or not isinstance(raw_unit, str) or not raw_unit:
            raise ValidationError(
                "trace_id: required (or both experiment_id and unit_id) to attribute feedback"
            )
        try:
            exp = gateway.config.get(raw_exp)
        except KeyError:
            raise NotFound(f"experiment_id: no experiment {raw_exp!r}") from None
        unit_id = check_id(raw_unit, "unit_id")
        a = await gateway.assignment(exp, unit_id)
        if a.variant_id is None and a.reason != HOLDOUT:
            return None
        exp_id, version, variant_id = exp.id, exp.version, a.variant_id
    metrics, attrs = await asyncio.to_thread(_split, body)  # redaction: off the event loop
    if not metrics:
        raise ValidationError("feedback needs at least one metric, e.g. rating or thumbs_up")
    data: dict[str, Any] = {
        "type": "feedback",
        "experiment_id": exp_id,
        "experiment_version": version,
        "variant_id": variant_id,
        "unit_id": pseudonymous_id(unit_id),
        "trace_id": trace_id,
        "metrics": metrics,
        "attrs": attrs,
    }
    for key in ("event_id", "ts"):
        if body.get(key) is not None:
            data[key] = body[key]
    return parse_event(data)
