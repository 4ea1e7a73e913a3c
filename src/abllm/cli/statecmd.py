"""What the state commands share: opening the backend, checking ids, applying and showing.

Used by ``abllm kill``, ``abllm resume`` and ``abllm rollout status|advance|rollback``
(:mod:`abllm.cli.rollout`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from abllm.cli.common import console, err_console, fail, load_config, print_json
from abllm.config import Experiment
from abllm.errors import AbllmError
from abllm.state import ExperimentState, StateStore

STORE_HELP = "event store URL; runtime state lives in its database (default: $ABLLM_STORE)"
STATE_HELP = "state backend URL when not the store's database, e.g. redis://host:6379/0"
WAIT_HELP = "seconds to wait for every live process to confirm it applied the change"
CONFIG_HELP = (
    "experiment YAML: register its definition of EXPERIMENT first "
    "(default: the definition `abllm serve` registered)"
)


def default_actor() -> str:
    """Who the audit log names for a CLI change: $ABLLM_ACTOR, else cli:<login>."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return os.environ.get("ABLLM_ACTOR") or f"cli:{user}"


@contextmanager
def _open(store: str | None, state: str | None) -> Iterator[StateStore]:
    from abllm.state import open_state

    try:
        backend = open_state(state, store_url=store)
    except AbllmError as exc:
        fail(exc)
    try:
        yield backend
    finally:
        backend.close()


def _known(
    backend: StateStore, config: Path | None, experiment_id: str, actor: str, wait: float = 3.0
) -> Experiment | None:
    """Refuse an id the state store does not know before anything is written (exit 2).

    With ``--config FILE`` the file's definition of the experiment is registered first (as
    ``abllm serve`` does at start) and returned. An empty store (just reset) is given up to
    ``wait`` seconds for the serving processes to write their state back.
    """
    from abllm.rollout import register_experiment
    from abllm.state.known import known_ids, unknown_experiment, wait_known

    try:
        if config is None:
            wait_known(backend, experiment_id, wait)
            return None
        experiments = load_config(config)
        try:
            definition = experiments.get(experiment_id)
        except KeyError:
            known = {*known_ids(backend), *(e.id for e in experiments.experiments)}
            raise unknown_experiment(experiment_id, sorted(known)) from None
        register_experiment(backend, definition, actor=actor)
        return definition
    except AbllmError as exc:
        fail(exc)


def _show(state: ExperimentState, as_json: bool, headline: str | None = None) -> None:
    from abllm.rollout import plan_of, position

    if as_json:
        print_json(state.to_json())
        return
    if headline:
        console.print(headline, highlight=False)
    rt = state.runtime()
    flags = []
    if rt.killed:
        flags.append("KILLED (everyone gets control)")
    if rt.paused:
        flags.append("paused")
    if rt.paused_variants:
        flags.append("paused arms: " + ", ".join(sorted(rt.paused_variants)))
    if state.held:
        flags.append("held after a rollback")
    console.print(
        f"{state.experiment_id} v{state.experiment_version} (state version {state.version}): "
        f"{position(state, plan_of(state.definition))}",
        highlight=False,
        markup=False,
    )
    traffic = "as configured" if rt.traffic is None else f"{rt.traffic:g} %"
    weights = "as configured" if rt.weights is None else dict(rt.weights)
    console.print(f"  traffic: {traffic}; weights: {weights}", highlight=False, markup=False)
    if flags:
        console.print("  " + "; ".join(flags), highlight=False, markup=False)
    if state.updated_at is not None:
        console.print(
            f"  last change {state.updated_at.isoformat()} by {state.updated_by}",
            highlight=False,
            markup=False,
        )


def _change(
    store: str | None,
    state: str | None,
    action: Callable[..., ExperimentState],
    experiment_id: str,
    actor: str | None,
    headline: str,
    as_json: bool,
    config: Path | None = None,
    with_definition: bool = False,
    wait: float = 3.0,
    **kwargs: Any,
) -> None:
    """Apply one state action by hand and show the new state; errors end as one line.

    ``with_definition`` passes the ``--config`` definition to the action as ``experiment``.
    """
    who = actor or default_actor()
    with _open(store, state) as backend:
        definition = _known(backend, config, experiment_id, who, wait)
        if with_definition:
            kwargs["experiment"] = definition
        try:
            new = action(backend, experiment_id, actor=who, **kwargs)
        except AbllmError as exc:
            fail(exc)
        _confirm_and_show(backend, new, as_json, headline, wait)


def _confirm_and_show(
    backend: StateStore, new: ExperimentState, as_json: bool, headline: str, wait: float
) -> None:
    """Show the new state and how many live processes applied it; exit 1 when some did not.

    The change is recorded either way; exit 1 tells a script that a live process (its
    heartbeat is recent) has not applied it within ``--wait`` seconds.
    """
    from abllm.state.confirm import confirm

    try:
        confirmation = confirm(backend, new.experiment_id, new.version, timeout_s=wait)
    except AbllmError as exc:
        _show(new, as_json, headline)
        err_console.print(
            f"warning: recorded, but cannot confirm who applied it: {exc.message}",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1) from None
    if as_json:
        print_json({**new.to_json(), "applied": confirmation.to_json()})
    else:
        _show(new, False, f"{headline} ({confirmation.summary()})")
    for line in confirmation.warnings():
        err_console.print(f"warning: {line}", markup=False, highlight=False)
    if not confirmation.complete:
        raise typer.Exit(1)
