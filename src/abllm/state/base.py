"""The ``StateStore`` Protocol and the compare-and-swap logic every backend shares.

A backend provides four primitives — read one, read all, conditional write (state row + audit
row in one transaction, then a push notification), read audit — and a push channel. Everything
else (retry on a concurrent write, no-op detection, audit rows) lives here once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from abllm.errors import Conflict
from abllm.state.liveness import ProcessBeat
from abllm.state.models import (
    Action,
    AuditEntry,
    ExperimentState,
    Transition,
    new_state,
    replace,
    utcnow,
)
from abllm.telemetry.redact import redact

log = logging.getLogger("abllm.state")

#: A change: the current state in, the wanted state (or a labelled Transition) out; None or the
#: same state means no change.
Change = Callable[[ExperimentState], ExperimentState | Transition | None]

_BOOKKEEPING = {"version", "updated_at", "updated_by"}


class Subscription(Protocol):
    """A running push listener; ``alive`` is False while its connection is down."""

    @property
    def alive(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Notice:
    """What a push listener reports: an experiment changed, or the channel (re)connected or
    dropped (the view then polls at once and keeps polling fast until it is back)."""

    experiment_id: str | None
    reconnected: bool = False
    dropped: bool = False


@runtime_checkable
class StateStore(Protocol):
    """Where runtime state and its audit log live (embedded file, PostgreSQL or Redis).

    Example::

        store = open_state("memory://")
        store.apply("exp", lambda s: replace(s, killed=True), actor="ops", action="kill")
    """

    url: str
    kind: str

    def get(self, experiment_id: str) -> ExperimentState | None:
        """The stored state, or None when nothing was recorded for this experiment."""
        ...

    def snapshot(self) -> dict[str, ExperimentState]:
        """Every experiment's state (what a poll reads)."""
        ...

    def apply(
        self,
        experiment_id: str,
        change: Change,
        *,
        actor: str,
        action: Action = "set",
        reason: str | None = None,
        now: datetime | None = None,
    ) -> ExperimentState:
        """Apply ``change`` atomically, write one audit row and notify every process.

        A Transition returned by ``change`` supplies the audit row's action and reason.
        """
        ...

    def audit(self, experiment_id: str, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` audit rows, oldest first."""
        ...

    def subscribe(self, callback: Callable[[Notice], None]) -> Subscription:
        """Start the push listener; ``callback`` runs on its thread for every change."""
        ...

    def close(self) -> None:
        """Release connections and stop listeners."""
        ...

    # -- reset detection and applied-version heartbeats (see abllm.state.liveness) -----------
    def epoch(self) -> str:
        """The store's generation token; a reset (emptied or replaced store) changes it."""
        ...

    def restore(self, state: ExperimentState, *, actor: str, reason: str) -> bool:
        """Write back ``state`` when the store holds no row for it; False when it does."""
        ...

    def heartbeat(self, beat: ProcessBeat) -> None:
        """Record which state versions a process applied."""
        ...

    def forget(self, process_id: str) -> None:
        """Remove a process's heartbeat (it stopped)."""
        ...

    def processes(self) -> list[ProcessBeat]:
        """Recent heartbeats, newest first."""
        ...


class BaseStateStore(abc.ABC):
    """Shared ``apply``: read, compute, conditional write, retry when another writer won."""

    url: str = ""
    kind: str = ""
    max_attempts = 20

    @abc.abstractmethod
    def get(self, experiment_id: str) -> ExperimentState | None:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def snapshot(self) -> dict[str, ExperimentState]:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def audit(self, experiment_id: str, limit: int = 100) -> list[AuditEntry]:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def subscribe(self, callback: Callable[[Notice], None]) -> Subscription:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def close(self) -> None:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def _write(self, expected_version: int, state: ExperimentState, entry: AuditEntry) -> bool:
        """Store ``state`` and ``entry`` if the stored version is still ``expected_version``.

        Returns False (and writes nothing) when another writer got there first. Backends
        notify listeners after a successful write.
        """

    def apply(
        self,
        experiment_id: str,
        change: Change,
        *,
        actor: str,
        action: Action = "set",
        reason: str | None = None,
        now: datetime | None = None,
    ) -> ExperimentState:
        """Apply ``change`` atomically; a change that alters nothing writes nothing.

        ``actor`` and the reason are redacted (they are shown on the dashboard and logged).
        """
        now = now or utcnow()
        actor = redact(actor)
        for _ in range(self.max_attempts):
            current = self.get(experiment_id) or new_state(experiment_id)
            wanted = change(current)
            act, why = action, reason
            if isinstance(wanted, Transition):
                act, why, wanted = wanted.action, reason or wanted.reason, wanted.state
            why = redact(why) if why else why
            if wanted is None or _same(current, wanted):
                return current
            updated = replace(
                wanted,
                experiment_id=experiment_id,
                version=current.version + 1,
                updated_at=now,
                updated_by=actor,
            )
            changes = current.diff(updated)
            if current.definition != updated.definition:
                changes["definition"] = [
                    current.fingerprint if current.definition else None,
                    updated.fingerprint,
                ]
            entry = AuditEntry(
                experiment_id=experiment_id,
                version=updated.version,
                ts=now,
                actor=actor,
                action=act,
                reason=why,
                changes=changes,
            )
            if self._write(current.version, updated, entry):
                log.info(
                    "state %s v%d %s by %s: %s (%s)",
                    experiment_id,
                    updated.version,
                    act,
                    actor,
                    changes,
                    why or "no reason given",
                )
                return updated
        raise Conflict(
            f"state of {experiment_id!r} kept changing under {self.max_attempts} attempts; retry"
        )

    # -- reset detection (backends add epoch/heartbeat primitives from abllm.state.liveness) --
    @abc.abstractmethod
    def epoch(self) -> str:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def heartbeat(self, beat: ProcessBeat) -> None:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def forget(self, process_id: str) -> None:
        """See :class:`StateStore`."""

    @abc.abstractmethod
    def processes(self) -> list[ProcessBeat]:
        """See :class:`StateStore`."""

    def restore(self, state: ExperimentState, *, actor: str, reason: str) -> bool:
        """Insert ``state`` as it was (same version) if the store has no row for it.

        Used after a reset so a kill the store lost is not silently dropped; a row written
        since (someone acted on the fresh store) wins, because the write is insert-if-absent.
        """
        entry = AuditEntry(
            experiment_id=state.experiment_id,
            version=state.version,
            ts=utcnow(),
            actor=actor,
            action="restore",
            reason=reason,
            changes=new_state(state.experiment_id).diff(state),
        )
        restored = self._write(0, state, entry)
        if restored:
            log.warning(
                "state %s v%d restored into %s by %s: %s",
                state.experiment_id,
                state.version,
                self.url,
                actor,
                reason,
            )
        return restored


def _same(a: ExperimentState, b: ExperimentState) -> bool:
    return a.model_dump(exclude=_BOOKKEEPING) == b.model_dump(exclude=_BOOKKEEPING)
