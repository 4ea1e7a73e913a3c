"""Sticky assignments: a unit keeps its variant while weights move.

Hash bucketing already keeps units in place while ``traffic`` rises (GrowthBook coverage only
adds units), but a change of *weights* moves bucket boundaries and so moves units between arms
(seed 000, "users see different variants across sessions"). :class:`StickyAssigner` wraps the
pure :func:`~abllm.assign.assign`: the first variant a unit gets is stored, and later
assignments return it as long as the unit is still eligible. What overrides a stored variant:
the kill switch, a paused experiment or arm (the unit gets control), targeting, holdout,
forced QA overrides and a winner rollout (which moves units on purpose). Stored variants are
keyed by experiment *version*: a new version starts afresh. Unit ids that hold PII are stored
as their pseudonym (:func:`unit_key`).

Anonymous → logged in (``Experiment.fallback_unit``): a request without its unit id is
assigned by the fallback attribute (e.g. the session) and stored under that key; when the
same session later arrives with a user id, the user inherits the session's variant.

The store is a Protocol; :class:`MemoryStickyStore` is here, and the embedded (SQLite),
PostgreSQL and Redis stores are in :mod:`abllm.state.sticky` (``open_sticky(url)``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from abllm.assign.batch import REASONS, AssignmentBatch, assign_many
from abllm.assign.core import Assignment, Reason, RuntimeState, assign
from abllm.config import Experiment
from abllm.errors import ValidationError
from abllm.telemetry.redact import pseudonymous_id

#: Reasons a stored variant may override: the unit is eligible and only the buckets moved.
_STICKY_REASONS = frozenset({Reason.ASSIGNED, Reason.VARIANT_PAUSED, Reason.OUTSIDE_TRAFFIC})
_CODES = {reason: REASONS.index(reason) for reason in Reason}
log = logging.getLogger("abllm.assign")


@runtime_checkable
class StickyStore(Protocol):
    """Where first assignments are kept: ``(experiment, version, unit key) -> variant``.

    ``put_many`` only inserts keys that are absent and returns what is stored for every key
    afterwards, so two processes racing on one new unit agree on the first writer's variant.
    """

    def get_many(self, experiment_id: str, version: int, keys: Sequence[str]) -> dict[str, str]:
        """Stored variants of ``keys`` (absent keys are left out)."""
        ...

    def put_many(
        self, experiment_id: str, version: int, assignments: Mapping[str, str]
    ) -> dict[str, str]:
        """Insert the absent keys; return the stored variant of every key given."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryStickyStore:
    """In-process sticky store (tests, one-process demos)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, int], dict[str, str]] = {}
        self._lock = threading.Lock()

    def get_many(self, experiment_id: str, version: int, keys: Sequence[str]) -> dict[str, str]:
        table = self._data.get((experiment_id, version), {})
        return {k: table[k] for k in keys if k in table}

    def put_many(
        self, experiment_id: str, version: int, assignments: Mapping[str, str]
    ) -> dict[str, str]:
        with self._lock:
            table = self._data.setdefault((experiment_id, version), {})
            for key, variant in assignments.items():
                table.setdefault(key, variant)
            return {k: table[k] for k in assignments}

    def close(self) -> None:
        """Nothing to release."""


def unit_key(unit_type: str, unit_id: str) -> str:
    """Storage key of a unit, typed so a user and a session with the same id never collide.

    An id that holds PII (an email as the user id) is stored as its stable pseudonym
    (``pii:<hash>``, the one the events carry), so the sticky table holds no raw PII.
    """
    return f"{unit_type}:{pseudonymous_id(unit_id)}"


class StickyAssigner:
    """:func:`~abllm.assign.assign` plus a sticky store (see the module docs).

    Example::

        sticky = StickyAssigner(MemoryStickyStore())
        a = sticky.assign(exp, "user-42", state=view.get(exp.id))
    """

    def __init__(
        self,
        store: StickyStore,
        *,
        timeout_s: float = 0.05,
        max_pending: int = 64,
        workers: int = 4,
    ) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self.workers = workers
        self._pending = 0
        self._errors = 0
        self._executor: ThreadPoolExecutor | None = None

    def _keys(
        self, experiment: Experiment, unit_id: str | None, attributes: Mapping[str, Any] | None
    ) -> tuple[str, str, str | None]:
        """(id to hash, key to store under, fallback key to inherit from)."""
        fb_type = experiment.fallback_unit
        fb_raw = (attributes or {}).get(fb_type) if fb_type else None
        fb_value = str(fb_raw) if fb_raw not in (None, "") else None
        if not unit_id:
            if fb_type is None or fb_value is None:
                raise ValidationError(
                    f"experiment {experiment.id}: no {experiment.unit} id"
                    + (f" and no {fb_type!r} attribute to fall back on" if fb_type else "")
                )
            return fb_value, unit_key(fb_type, fb_value), None
        if fb_type is not None and fb_value == unit_id:  # the caller already fell back
            return unit_id, unit_key(fb_type, unit_id), None
        fallback = unit_key(fb_type, fb_value) if fb_type and fb_value else None
        return unit_id, unit_key(experiment.unit, unit_id), fallback

    def assign(
        self,
        experiment: Experiment,
        unit_id: str | None,
        attributes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        state: RuntimeState | None = None,
    ) -> Assignment:
        """Assign one unit, keeping its stored variant when it is still eligible (blocking)."""
        hashed, key, fallback = self._keys(experiment, unit_id, attributes)
        a = assign(experiment, hashed, attributes, now, state)
        if a.reason not in _STICKY_REASONS:
            return a
        return self._stick(experiment, a, key, fallback, state)

    async def assign_async(
        self,
        experiment: Experiment,
        unit_id: str | None,
        attributes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        state: RuntimeState | None = None,
    ) -> Assigned:
        """:meth:`assign` for the event loop: the store is asked on a small thread pool and
        waited for at most ``timeout_s``.

        When the store is slow, frozen, down, or already has ``max_pending`` lookups waiting,
        the unit gets its hash assignment at once, with the cause in ``fallback``
        (``timeout``, ``error``, ``saturated``): a sticky store outage never fails or stalls a
        request.
        """
        hashed, key, fallback = self._keys(experiment, unit_id, attributes)
        a = assign(experiment, hashed, attributes, now, state)
        if a.reason not in _STICKY_REASONS:
            return Assigned(a)
        if self._pending >= self.max_pending:
            return Assigned(a, "saturated")
        loop = asyncio.get_running_loop()
        self._pending += 1
        future = loop.run_in_executor(
            self._pool(), self._stick, experiment, a, key, fallback, state
        )
        future.add_done_callback(self._done)
        try:
            # shield: a timed-out lookup still finishes in its thread; its result is dropped.
            return Assigned(await asyncio.wait_for(asyncio.shield(future), self.timeout_s))
        except TimeoutError:
            return Assigned(a, "timeout")
        except Exception as exc:
            self._errors += 1
            if self._errors in (1, 100) or self._errors % 10_000 == 0:
                log.warning(
                    "sticky store failed %d time(s), last: %s; hash assignments used",
                    self._errors,
                    type(exc).__name__,
                )
            return Assigned(a, "error")

    def _done(self, future: asyncio.Future[Assignment]) -> None:
        self._pending -= 1
        if not future.cancelled():
            future.exception()  # retrieved, so a late failure is not logged as "never seen"

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="abllm-sticky"
            )
        return self._executor

    def _stick(
        self,
        experiment: Experiment,
        a: Assignment,
        key: str,
        fallback: str | None,
        state: RuntimeState | None,
    ) -> Assignment:
        """The stored variant (storing ``a``'s when the unit is new): the blocking part."""
        exp_id, version = experiment.id, experiment.version
        wanted = [key, fallback] if fallback else [key]
        stored = self.store.get_many(exp_id, version, wanted)
        variant = stored.get(key)
        if variant is None and fallback is not None and fallback in stored:
            variant = self.store.put_many(exp_id, version, {key: stored[fallback]})[key]
        if variant is None:
            if a.reason is not Reason.ASSIGNED or a.variant_id is None:
                return a
            variant = self.store.put_many(exp_id, version, {key: a.variant_id})[key]
        if state is not None and variant in state.paused_variants:
            control = experiment.control.id
            return Assignment(
                exp_id, version, None, False, Reason.VARIANT_PAUSED, a.bucket, control
            )
        return Assignment(exp_id, version, variant, True, Reason.ASSIGNED, a.bucket, variant)

    def assign_many(
        self,
        experiment: Experiment,
        unit_ids: Sequence[str],
        now: datetime | None = None,
        state: RuntimeState | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> AssignmentBatch:
        """Vectorised :meth:`assign` for units with ids (one shared ``attributes`` mapping)."""
        batch = assign_many(experiment, unit_ids, attributes, now, state)
        variant, reason = batch.variant.copy(), batch.reason.copy()
        codes = np.array([_CODES[r] for r in _STICKY_REASONS], dtype=np.int8)
        candidates = np.flatnonzero(np.isin(reason, codes))
        if len(candidates) == 0:
            return batch
        keys = [unit_key(experiment.unit, unit_ids[i]) for i in candidates.tolist()]
        exp_id, version = experiment.id, experiment.version
        stored = self.store.get_many(exp_id, version, keys)
        assigned = _CODES[Reason.ASSIGNED]
        new = {
            k: batch.variant_ids[int(variant[i])]
            for i, k in zip(candidates.tolist(), keys, strict=True)
            if k not in stored and reason[i] == assigned
        }
        if new:
            stored.update(self.store.put_many(exp_id, version, new))
        index = {vid: i for i, vid in enumerate(batch.variant_ids)}
        paused = set(state.paused_variants) if state is not None else set()
        have = [
            (i, stored[k]) for i, k in zip(candidates.tolist(), keys, strict=True) if k in stored
        ]
        if have:
            rows = np.fromiter((i for i, _ in have), dtype=np.int64, count=len(have))
            names = [v for _, v in have]
            values = np.fromiter((index[v] for v in names), dtype=np.int64, count=len(have))
            blocked = np.fromiter((v in paused for v in names), dtype=bool, count=len(have))
            variant[rows] = np.where(blocked, -1, values)
            reason[rows] = np.where(blocked, _CODES[Reason.VARIANT_PAUSED], assigned)
        return AssignmentBatch(experiment, batch.variant_ids, variant, reason, batch.bucket)


def weights_can_move(experiment: Experiment) -> bool:
    """Whether a unit could change arms without stickiness.

    Traffic ramps never move units (coverage only adds), so only per-arm weight stages, a
    bandit (which moves weights), or an anonymous → logged-in fallback need a sticky store.
    """
    stages = experiment.rollout.stages if experiment.rollout else []
    return (
        experiment.bandit is not None
        or experiment.fallback_unit is not None
        or any(stage.weights is not None for stage in stages)
    )


class Assigned(NamedTuple):
    """An assignment made on the event loop; ``fallback`` names why the sticky store did not
    answer (``timeout``, ``error``, ``saturated``) when the hash assignment stands in (the
    caller must not cache it)."""

    assignment: Assignment
    fallback: str | None = None


class SelectiveStickyAssigner:
    """Sticky only where it matters (:func:`weights_can_move`); pure hashing elsewhere.

    A sticky lookup costs a store round trip per new unit; experiments whose weights never move
    keep the pure function's speed with the same answers.
    """

    def __init__(self, sticky: StickyAssigner) -> None:
        self.sticky = sticky

    def assign(
        self,
        experiment: Experiment,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        state: RuntimeState | None = None,
    ) -> Assignment:
        """Assign one unit, through the sticky store when the experiment's weights can move."""
        if weights_can_move(experiment):
            return self.sticky.assign(experiment, unit_id, attributes, now, state)
        return assign(experiment, unit_id, attributes, now, state)

    async def assign_async(
        self,
        experiment: Experiment,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        state: RuntimeState | None = None,
    ) -> Assigned:
        """:meth:`assign` for the event loop (see :meth:`StickyAssigner.assign_async`)."""
        if weights_can_move(experiment):
            return await self.sticky.assign_async(experiment, unit_id, attributes, now, state)
        return Assigned(assign(experiment, unit_id, attributes, now, state))
