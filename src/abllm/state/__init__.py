"""Runtime state (kill switch, stage, weights, paused arms, winner) with an audit log.

Kept apart from the experiment definition: the YAML says what the experiment is, the state says
what is happening to it now. Backends: embedded SQLite, PostgreSQL (LISTEN/NOTIFY), Redis
(pub/sub); :class:`StateView` is the in-memory copy the gateway reads on every request.
"""

from abllm.state.base import BaseStateStore, Change, Notice, StateStore, Subscription
from abllm.state.known import known_ids, require_known
from abllm.state.models import (
    Action,
    AuditEntry,
    ExperimentState,
    Transition,
    new_state,
    replace,
    runtime_json,
    utcnow,
    variant_fingerprint,
)
from abllm.state.open import open_state, state_url_for
from abllm.state.view import StateView

__all__ = [
    "Action",
    "AuditEntry",
    "BaseStateStore",
    "Change",
    "ExperimentState",
    "Notice",
    "StateStore",
    "StateView",
    "Subscription",
    "Transition",
    "known_ids",
    "new_state",
    "open_state",
    "replace",
    "require_known",
    "runtime_json",
    "state_url_for",
    "utcnow",
    "variant_fingerprint",
]
