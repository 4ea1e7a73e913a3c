"""Delivering a batch to a store so that no event can hold up the ones behind it.

A store write fails for one of two reasons. ``StoreUnavailable`` (the store is down or timed
out) is about the store: the caller spools the batch and retries later. Anything else is about
the data (a limit only that engine has, a value its driver cannot encode): retrying would fail
forever, so the batch is split in halves until the events the store refuses are found; those go
to the dead-letter file with the reason (:mod:`abllm.events.deadletter`) and the rest are
stored. Events built without validation (the gateway's) are screened first with the same limits
as validation (``unstorable_reason``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from abllm.errors import StoreUnavailable
from abllm.events.deadletter import DeadLetters
from abllm.events.models import Event, fit_to_limit, unstorable_reason
from abllm.events.store import EventStore


class Delivery:
    """``store(events)`` into ``store``; refused events into ``dead_letters``."""

    def __init__(self, store: EventStore, dead_letters: DeadLetters) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self._lock = threading.Lock()
        self.dead_lettered = 0  # events set aside since start

    def screen(self, events: list[Event]) -> list[Event]:
        """The storable events (an oversized one without its longest texts: ``fit_to_limit``);
        the others are set aside with the reason."""
        kept: list[Event] = []
        refused: list[tuple[str, object]] = []
        for raw in events:
            event = fit_to_limit(raw)
            reason = unstorable_reason(event)
            if reason is None:
                kept.append(event)
            else:
                refused.append((reason, event))
        if refused:
            self.set_aside(refused)
        return kept

    def set_aside(self, items: Sequence[tuple[str, object]]) -> None:
        """Write ``(reason, event or raw JSON)`` pairs to the dead-letter file."""
        self.dead_letters.add(items)
        with self._lock:
            self.dead_lettered += len(items)

    def store_all(self, events: Sequence[Event]) -> None:
        """Append ``events``, splitting on data errors; ``StoreUnavailable`` propagates (the
        caller spools the whole batch; halves already stored are deduplicated on replay)."""
        if not events:
            return
        try:
            self.store.append(events)
        except StoreUnavailable:
            raise
        except Exception as exc:  # the store refused this data: find the events responsible
            if len(events) == 1:
                reason = f"{self.store.dialect} refused the event: {type(exc).__name__}: {exc}"
                self.set_aside([(reason, events[0])])
                return
            half = len(events) // 2
            self.store_all(events[:half])
            self.store_all(events[half:])
