"""The experiment page's controls: pause, kill, resume, advance and roll back, with a reason.

Each button is a small form posting to ``/dashboard/experiments/{id}/actions/{action}`` with a
required ``reason``; the script asks for confirmation before it is sent. The change goes
through the same state actions as the admin API (``abllm.rollout.actions``), so it is one
audited row in the state store, with the reason and the actor ``dashboard``.

Who may act: a session whose request scope is ``admin`` (``abllm.server.auth.key_scope``);
everyone else sees the buttons disabled with a hint. Cross-site requests are refused by a
same-origin check on ``Origin`` (or ``Sec-Fetch-Site``), the defence OWASP's CSRF cheat sheet
calls "verifying origin with standard headers"; a POST carrying neither header is refused too,
since every current browser sends one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from abllm.config import Experiment
from abllm.dashboard.html import esc
from abllm.dashboard.router import PREFIX
from abllm.errors import AbllmError, Conflict, NotFound, StoreUnavailable, ValidationError
from abllm.state import ExperimentState, StateStore

ACTOR = "dashboard"
MAX_REASON = 2000


@dataclass(frozen=True)
class Control:
    """One button: its action name, label, and the question the confirmation asks."""

    action: str
    label: str
    question: str
    danger: bool = False


CONTROLS = (
    Control("pause", "Pause", "Pause {id}? Every unit gets control until resumed.", True),
    Control("kill", "Kill", "Kill {id}? Every process serves control until resumed.", True),
    Control("resume", "Resume", "Resume {id}? Clears kill, pause and paused arms."),
    Control("advance", "Advance", "Advance {id} to its next rollout stage?"),
    Control("rollback", "Roll back", "Roll {id} back one stage? It stays held until advanced."),
)
_BY_ACTION = {c.action: c for c in CONTROLS}
_STATUS = {ValidationError: 400, NotFound: 404, Conflict: 409, StoreUnavailable: 503}


def action_href(experiment_id: str, action: str) -> str:
    """Where one control posts."""
    return f"{PREFIX}/experiments/{quote(experiment_id, safe='')}/actions/{action}"


def controls_section(experiment: Experiment, allowed: bool, has_state: bool) -> str:
    """The five forms; disabled with the reason when this session may not act."""
    hint = ""
    if not has_state:
        allowed = False
        hint = "Controls need a state backend: start the server with --state."
    elif not allowed:
        hint = "Controls need an admin session: sign in with an admin key to act."
    disabled = "" if allowed else " disabled"
    forms = []
    for c in CONTROLS:
        question = c.question.format(id=experiment.id)
        cls = "control danger" if c.danger else "control"
        href = esc(action_href(experiment.id, c.action))
        forms.append(
            f'<form class="{cls}" method="post" action="{href}"'
            f' data-confirm="{esc(question)}">'
            f'<input type="text" name="reason" required maxlength="{MAX_REASON}" '
            f'placeholder="reason (required)" aria-label="reason to {esc(c.action)}"{disabled}>'
            f'<button type="submit" name="action" value="{c.action}"{disabled}>{esc(c.label)}'
            "</button></form>"
        )
    note = f'<p class="muted hint">{esc(hint)}</p>' if hint else ""
    return (
        f'{note}<div class="controls">{"".join(forms)}</div>'
        "<p class='muted'>Each change is recorded in the audit log below with its reason.</p>"
    )


def same_origin(headers: Mapping[str, str]) -> bool:
    """True when the browser says the form came from this origin (OWASP CSRF cheat sheet)."""
    origin = headers.get("origin")
    host = headers.get("host")
    if origin and origin != "null":
        return host is not None and urlsplit(origin).netloc == host
    return headers.get("sec-fetch-site") == "same-origin"


def run_action(
    store: StateStore, experiment: Experiment, action: str, reason: str
) -> ExperimentState:
    """Apply one control through ``abllm.rollout.actions`` (the admin API's path)."""
    from abllm.rollout import actions

    calls: dict[str, Callable[..., ExperimentState]] = {
        "pause": actions.pause,
        "kill": actions.kill,
        "resume": actions.resume,
        "advance": actions.advance,
        "rollback": actions.rollback,
    }
    extra: dict[str, Any] = {"experiment": experiment} if action in ("advance", "rollback") else {}
    return calls[action](store, experiment.id, actor=ACTOR, reason=reason, **extra)


def error_status(exc: AbllmError) -> int:
    """The HTTP status of a refused change (as the admin API answers it)."""
    return next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)


def known_action(action: str) -> bool:
    """Whether ``action`` names one of the controls."""
    return action in _BY_ACTION
