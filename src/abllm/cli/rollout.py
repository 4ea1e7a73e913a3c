"""``abllm kill``, ``abllm resume`` and ``abllm rollout status|advance|rollback|run``.

Every command takes ``--store URL`` (the event store; state lives in its database) and
``--state URL`` (a separate state backend, e.g. ``redis://…``). A kill or a stage change reaches
every gateway process within a second through the state backend's push channel.
"""

from __future__ import annotations

import getpass
import os
import time
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


def register(app: typer.Typer) -> None:
    """Add ``kill``, ``resume`` and the ``rollout`` group."""

    @app.command()
    def kill(
        experiment: str = typer.Argument(..., help="experiment id"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        reason: str | None = typer.Option(None, "--reason", help="why (kept in the audit log)"),
        actor: str | None = typer.Option(None, "--actor", help="who (default: cli:<login>)"),
        as_json: bool = typer.Option(False, "--json", help="print the new state as JSON"),
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
        wait: float = typer.Option(3.0, "--wait", min=0, help=WAIT_HELP),
    ) -> None:
        """Kill switch: every process serves control for EXPERIMENT within a second."""
        from abllm.rollout import kill as do_kill

        headline = f"killed {experiment}: control for everyone"
        _change(
            store,
            state,
            do_kill,
            experiment,
            actor,
            headline,
            as_json,
            config,
            wait=wait,
            reason=reason,
        )

    @app.command()
    def resume(
        experiment: str = typer.Argument(..., help="experiment id"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        reason: str | None = typer.Option(None, "--reason", help="why (kept in the audit log)"),
        actor: str | None = typer.Option(None, "--actor", help="who (default: cli:<login>)"),
        as_json: bool = typer.Option(False, "--json", help="print the new state as JSON"),
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
        wait: float = typer.Option(3.0, "--wait", min=0, help=WAIT_HELP),
    ) -> None:
        """Undo a kill or pause (also un-pauses arms a guardrail paused)."""
        from abllm.rollout import resume as do_resume

        headline = f"resumed {experiment}"
        _change(
            store,
            state,
            do_resume,
            experiment,
            actor,
            headline,
            as_json,
            config,
            wait=wait,
            reason=reason,
        )

    rollout_app = typer.Typer(
        name="rollout", help="Show and move an experiment's rollout stage.", no_args_is_help=True
    )
    app.add_typer(rollout_app)

    @rollout_app.command("status")
    def status(
        experiment: str = typer.Argument(..., help="experiment id"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        audit: int = typer.Option(5, "--audit", help="audit rows to show (newest last)"),
        as_json: bool = typer.Option(False, "--json", help="state and audit rows as JSON"),
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    ) -> None:
        """Where EXPERIMENT's rollout is, its runtime overrides and its latest changes."""
        from abllm.state.confirm import confirm
        from abllm.state.known import require_known

        with _open(store, state) as backend:
            _known(backend, config, experiment, default_actor())
            try:
                current = require_known(backend, experiment)
                rows = backend.audit(experiment, limit=audit) if audit > 0 else []
                applied = confirm(backend, experiment, current.version, timeout_s=0)
            except AbllmError as exc:
                fail(exc)
            if as_json:
                print_json(
                    {
                        **current.to_json(),
                        "applied": applied.to_json(),
                        "audit": [r.to_json() for r in rows],
                    }
                )
                return
            _show(current, False)
            console.print(f"  {applied.summary()}", highlight=False, markup=False)
            for row in rows:
                console.print(
                    f"  #{row.version} {row.ts.isoformat()} {row.actor} {row.action}: "
                    f"{row.reason or ''} {row.changes}",
                    highlight=False,
                    markup=False,
                )

    @rollout_app.command("advance")
    def advance(
        experiment: str = typer.Argument(..., help="experiment id"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        winner: str | None = typer.Option(
            None, "--winner", help="start (or continue) the winner rollout of this variant"
        ),
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
        reason: str | None = typer.Option(None, "--reason", help="why (kept in the audit log)"),
        actor: str | None = typer.Option(None, "--actor", help="who (default: cli:<login>)"),
        as_json: bool = typer.Option(False, "--json", help="print the new state as JSON"),
        wait: float = typer.Option(3.0, "--wait", min=0, help=WAIT_HELP),
    ) -> None:
        """Move EXPERIMENT one step forward (next stage, or the winner rollout)."""
        from abllm.rollout import advance as do_advance

        _change(
            store,
            state,
            do_advance,
            experiment,
            actor,
            f"advanced {experiment}",
            as_json,
            config,
            with_definition=True,
            wait=wait,
            winner=winner,
            reason=reason,
        )

    @rollout_app.command("rollback")
    def rollback(
        experiment: str = typer.Argument(..., help="experiment id"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
        reason: str | None = typer.Option(None, "--reason", help="why (kept in the audit log)"),
        actor: str | None = typer.Option(None, "--actor", help="who (default: cli:<login>)"),
        as_json: bool = typer.Option(False, "--json", help="print the new state as JSON"),
        wait: float = typer.Option(3.0, "--wait", min=0, help=WAIT_HELP),
    ) -> None:
        """Move EXPERIMENT one step back; the controller then holds until advanced by hand."""
        from abllm.rollout import rollback as do_rollback

        _change(
            store,
            state,
            do_rollback,
            experiment,
            actor,
            f"rolled back {experiment}",
            as_json,
            config,
            with_definition=True,
            wait=wait,
            reason=reason,
        )

    @rollout_app.command("run")
    def run(
        config: Path = typer.Argument(..., help="experiment YAML file"),
        store: str | None = typer.Option(None, "--store", help=STORE_HELP),
        state: str | None = typer.Option(None, "--state", help=STATE_HELP),
        interval: float | None = typer.Option(
            None, "--interval", help="seconds between checks (default: rollout.check_interval_s)"
        ),
        once: bool = typer.Option(False, "--once", help="check once and exit"),
        webhook: str | None = typer.Option(
            None,
            "--alert-webhook",
            envvar="ABLLM_ALERT_WEBHOOK",
            help="POST alerts as JSON to this URL",
        ),
    ) -> None:
        """Run the rollout controller: guardrails on live results, stage moves, alerts.

        It takes the same per-experiment leases as the controllers inside ``abllm serve``, so
        exactly one process acts for each experiment whichever runs. It also runs the
        experiments' scheduled eval replays (``eval.schedule``).
        """
        from abllm.eval.schedule import EvalScheduler
        from abllm.events import open_store
        from abllm.rollout import AnalysisResults, LogAlert, RolloutController, WebhookAlert
        from abllm.rollout.alerts import AlertHook
        from abllm.rollout.loop import ControllerLoop
        from abllm.state.lease import leases_for

        experiments = load_config(config)
        with _open(store, state) as backend:
            try:
                events = open_store(store)
            except AbllmError as exc:
                fail(exc)
            scheduler = EvalScheduler(experiments.experiments, events)  # eval.schedule replays
            controller: RolloutController | None = None
            try:
                hooks: list[AlertHook] = [LogAlert()]
                if webhook:
                    hooks.append(WebhookAlert(webhook))
                controller = RolloutController(
                    backend,
                    experiments.experiments,
                    AnalysisResults(events),
                    hooks=hooks,
                    interval_s=interval,
                    side_tasks=[scheduler.tick] if scheduler else [],
                    leases=leases_for(backend),
                    actor="abllm rollout run",
                )
                controller.register()
                loop = ControllerLoop(controller)
                while True:
                    outcomes = controller.tick() if once else loop.run_due()
                    for outcome in outcomes:
                        if outcome.applied or outcome.error:
                            what = outcome.error or outcome.decision.reason
                            console.print(
                                f"{outcome.experiment_id}: {outcome.decision.action}: {what}",
                                highlight=False,
                                markup=False,
                            )
                    if once:
                        break
                    time.sleep(max(loop.wait_s(), 0.05))
            except AbllmError as exc:
                fail(exc)
            except KeyboardInterrupt:
                pass
            finally:
                scheduler.close()
                if controller is not None:
                    controller.close()  # releases the leases: a serve process takes over
                events.close()
