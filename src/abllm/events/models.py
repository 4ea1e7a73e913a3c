"""Event models: the wire and store schema every figure abllm reports is computed from.

An event is validated once, at the edge (HTTP body, SDK call, imported file row); stores and the
pipeline then trust it. ``event_id`` makes every write idempotent: a retried batch carries the same
ids and stores ignore the duplicates.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError

from abllm.errors import LimitExceeded, ValidationError
from abllm.telemetry.redact import reject_pii

#: Largest accepted event, as the UTF-8 length of its JSON encoding.
MAX_EVENT_BYTES = 32 * 1024
#: Largest accepted batch: at most this many events ...
MAX_BATCH_EVENTS = 1_000
#: ... and at most this many bytes of JSON (1 MB).
MAX_BATCH_BYTES = 1024 * 1024

#: Metrics with their own nullable DOUBLE column in ``abllm_events`` (bools stored as 1.0/0.0);
#: any other metric goes into the ``extra`` JSON column.
WELL_KNOWN_METRICS: tuple[str, ...] = (
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "rating",
    "thumbs_up",
    "task_completed",
    "edit_distance",
    "copied",
    "retried",
    "abandoned",
    "fallback",
    "schema_valid",
)


class EventType(StrEnum):
    """What happened: a unit saw a variant, an LLM call was made, feedback or an outcome came in.

    ``eval`` events are offline replay results (``abllm eval``, see docs/eval.md), never
    traffic: their metrics are named ``score.<scorer>`` so no analysis metric reads them.
    """

    exposure = "exposure"
    llm_call = "llm_call"
    feedback = "feedback"
    outcome = "outcome"
    eval = "eval"


#: Longest id (``experiment_id``, ``unit_id``, ``variant_id``, ``trace_id``), in characters.
MAX_ID_CHARS = 200
#: Largest ``experiment_version``: every store keeps it in a signed 32-bit column.
MAX_EXPERIMENT_VERSION = 2**31 - 1
#: Largest magnitude of a metric or numeric attribute. Metrics are stored as doubles and analysis
#: sums their squares: 1e15 keeps integers exact (< 2**53) and a sum of squares over 10**8 events
#: far from overflow, while any real latency, token count, cost or rating fits many times over.
MAX_METRIC_ABS = 1e15
#: Accepted ``ts`` range, ``[MIN_TS, MAX_TS)``: within ClickHouse's ``DateTime64``
#: (1900-01-01 to 2299-12-31) and numpy's nanosecond ``datetime64`` (up to 2262-04-11).
MIN_TS = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2262, 1, 1, tzinfo=UTC)

#: PostgreSQL text cannot hold NUL and no UTF-8 encoder takes a lone surrogate: such ids would
#: pass validation and then fail every store write, so they are refused with the field named.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def check_id(value: str, field: str) -> str:
    """``value`` if it is a storable id (1-200 characters, no NUL); else ``ValidationError``.

    The one rule for every id on every path: event bodies, feedback and the chat ``user``.
    """
    if not value:
        raise ValidationError(f"{field}: must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise ValidationError(
            f"{field}: {len(value)} characters is over the limit of {MAX_ID_CHARS}"
        )
    if _UNSTORABLE.search(value) is not None:
        raise ValidationError(f"{field}: must not contain NUL characters or lone surrogates")
    return value


def _storable(value: str) -> str:
    if _UNSTORABLE.search(value) is not None:
        raise ValueError("must not contain NUL characters or lone surrogates")
    return value


Name = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(_storable)
]
Key = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_storable)]
MetricValue = bool | int | float | None
AttrValue = bool | int | float | str | None


def _check_number(kind: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    # NaN and inf would poison every mean computed in SQL; huge numbers overflow the columns.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{kind}.{name} must be a finite number, got {value}")
    if abs(value) > MAX_METRIC_ABS:
        raise ValueError(f"{kind}.{name} must be at most {MAX_METRIC_ABS:g} in magnitude")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def uuid7() -> UUID:
    """A time-ordered UUID (version 7, RFC 9562 §5.7): 48-bit Unix ms, then 74 random bits.

    Ordered ids keep the stores' ``event_id`` indexes append-mostly (B-tree right-most
    inserts instead of random page writes), which measurably speeds up ingestion.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (2**62 - 1)
    return UUID(int=value)


class Event(BaseModel):
    """One event, e.g. ``Event(type="feedback", experiment_id="tone", unit_id="u1",
    variant_id="warm", metrics={"thumbs_up": True})``.

    ``event_id`` is generated when absent; ``ts`` defaults to now and is always UTC (a naive
    timestamp is read as UTC). The JSON encoding may not exceed ``MAX_EVENT_BYTES``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid7)
    ts: datetime = Field(default_factory=_utcnow)
    type: EventType
    experiment_id: Name
    experiment_version: int = Field(default=1, ge=0, le=MAX_EXPERIMENT_VERSION)
    variant_id: Name | None = None
    unit_id: Name
    trace_id: Name | None = None
    metrics: dict[Key, MetricValue] = Field(default_factory=dict)
    attrs: dict[Key, AttrValue] = Field(default_factory=dict)

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise ValueError("out of range") from None
        if not MIN_TS <= value < MAX_TS:
            raise ValueError(f"must be from {MIN_TS:%Y-%m-%d} to before {MAX_TS:%Y-%m-%d} (UTC)")
        return value

    _trace_id_private = field_validator("trace_id")(lambda v: v and reject_pii(v, "trace_id"))

    @field_validator("metrics")
    @classmethod
    def _bounded_metrics(cls, value: dict[str, MetricValue]) -> dict[str, MetricValue]:
        for name, metric in value.items():
            reject_pii(name, "metrics: a metric name")
            _check_number("metrics", name, metric)
        return value

    @field_validator("attrs")
    @classmethod
    def _bounded_attrs(cls, value: dict[str, AttrValue]) -> dict[str, AttrValue]:
        for name, attr in value.items():
            if isinstance(attr, str):
                _storable(attr)
            else:
                _check_number("attrs", name, attr)
        return value

    def size_bytes(self) -> int:
        """UTF-8 length of the JSON encoding: what the 32 KB limit is measured on."""
        return len(self.__pydantic_serializer__.to_json(self))


#: JSON bytes of an event besides its strings and maps (keys, id, timestamp, punctuation).
_FIXED_BYTES = 400
#: Any character costs at most 6 bytes of JSON (``\u001f``) and at most 4 bytes more than
#: its ``repr`` (non-ASCII text is written as UTF-8), so 6x the repr length bounds the JSON.
_PER_CHAR = 6


def size_bound(event: Event) -> int:
    """A cheap upper bound of ``size_bytes()`` (C-level ``repr`` instead of serialising)."""
    chars = len(event.experiment_id) + len(event.unit_id)
    chars += len(event.variant_id or "") + len(event.trace_id or "")
    chars += len(repr(event.metrics)) + len(repr(event.attrs))
    return _FIXED_BYTES + _PER_CHAR * chars


def _checked_size(event: Event) -> int:
    """JSON size of ``event`` (a bound when far below the limit); ``LimitExceeded`` over 32 KB.

    Every emitted event is checked on the gateway's hot path; the bound is about twice as
    cheap as serialising, and only events near the limit pay for the exact size.
    """
    bound = size_bound(event)
    if bound <= MAX_EVENT_BYTES:
        return bound
    size = event.size_bytes()
    if size > MAX_EVENT_BYTES:
        raise LimitExceeded(
            f"event {event.event_id} is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes "
            "(32 KB) per event"
        )
    return size


def fit_to_limit(event: Event) -> Event:
    """``event``, or a copy without its longest text attributes when it is over the limit.

    For events the gateway measured: a prompt and answer logged with ``log_payloads`` can push
    an ``llm_call`` over ``MAX_EVENT_BYTES``. The measurements matter more than the text, so
    the longest string attributes are dropped (``attrs.truncated`` records which) until it fits.
    """
    if size_bound(event) <= MAX_EVENT_BYTES or event.size_bytes() <= MAX_EVENT_BYTES:
        return event
    attrs = dict(event.attrs)
    lengths = {k: len(v) for k, v in attrs.items() if isinstance(v, str)}
    texts = sorted(lengths, key=lambda k: -lengths[k])
    dropped: list[str] = []
    for key in texts:
        del attrs[key]
        dropped.append(key)
        slim = event.model_copy(update={"attrs": {**attrs, "truncated": ",".join(dropped)}})
        if slim.size_bytes() <= MAX_EVENT_BYTES:
            return slim
    return event


def check_event(event: Event) -> Event:
    """Raise ``LimitExceeded`` when ``event`` is over ``MAX_EVENT_BYTES``; return it otherwise."""
    _checked_size(event)
    return event


def check_batch(events: Sequence[Event]) -> None:
    """Enforce the batch limits: ``MAX_BATCH_EVENTS`` events and ``MAX_BATCH_BYTES`` of JSON."""
    if len(events) > MAX_BATCH_EVENTS:
        raise LimitExceeded(
            f"batch has {len(events)} events; the limit is {MAX_BATCH_EVENTS} events per batch"
        )
    total = sum(_checked_size(event) for event in events)
    if total > MAX_BATCH_BYTES:
        total = sum(event.size_bytes() for event in events)  # bounds were loose: measure
    if total > MAX_BATCH_BYTES:
        raise LimitExceeded(
            f"batch is {total} bytes; the limit is {MAX_BATCH_BYTES} bytes (1 MB) per batch"
        )


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Validate one event from JSON text or a mapping; errors name the offending field.

    Raises ``LimitExceeded`` for an event over 32 KB and ``ValidationError`` otherwise.
    """
    if isinstance(data, str | bytes):
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > MAX_EVENT_BYTES:
            raise LimitExceeded(
                f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES} bytes (32 KB) per event"
            )
        try:
            return check_event(Event.model_validate_json(raw))
        except PydanticValidationError as exc:
            raise ValidationError(f"invalid event: {_describe(exc)}") from None
    try:
        return check_event(Event.model_validate(data))
    except PydanticValidationError as exc:
        raise ValidationError(f"invalid event: {_describe(exc)}") from None


def parse_batch(data: str | bytes | Sequence[dict[str, Any]]) -> list[Event]:
    """Validate a batch (a JSON array or a list of mappings) and enforce the batch limits."""
    if isinstance(data, str | bytes):
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > MAX_BATCH_BYTES:
            raise LimitExceeded(
                f"batch is {len(raw)} bytes; the limit is {MAX_BATCH_BYTES} bytes (1 MB) per batch"
            )
        try:
            events = _BATCH.validate_json(raw)
        except PydanticValidationError as exc:
            raise ValidationError(f"invalid batch: {_describe(exc)}") from None
    else:
        if len(data) > MAX_BATCH_EVENTS:
            raise LimitExceeded(
                f"batch has {len(data)} events; the limit is {MAX_BATCH_EVENTS} events per batch"
            )
        events = [parse_event(item) for item in data]
    check_batch(events)
    return events


_BATCH: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


def unstorable_reason(event: Event) -> str | None:
    """Why ``event`` cannot be stored, naming the field, or None.

    For events built without validation (the gateway's ``model_construct`` on its hot path,
    with a unit or trace id taken from a header): the same limits as ``Event`` validation,
    checked cheaply in the pipeline's flusher thread instead of on the request.
    """
    ids = (
        ("experiment_id", event.experiment_id),
        ("unit_id", event.unit_id),
        ("variant_id", event.variant_id),
        ("trace_id", event.trace_id),
    )
    for field, value in ids:
        if value is None and field in ("variant_id", "trace_id"):
            continue
        if not isinstance(value, str):
            return f"{field}: must be a string"
        try:
            check_id(value, field)
        except ValidationError as exc:
            return exc.message
    version = event.experiment_version
    if not isinstance(version, int) or not 0 <= version <= MAX_EXPERIMENT_VERSION:
        return f"experiment_version: must be from 0 to {MAX_EXPERIMENT_VERSION}, got {version}"
    try:
        for name, metric in event.metrics.items():
            _check_number("metrics", name, metric)
        for name, attr in event.attrs.items():
            _check_number("attrs", name, attr)
        check_event(event)
    except (ValueError, ValidationError) as exc:
        return exc.message if isinstance(exc, ValidationError) else str(exc)
    return None
