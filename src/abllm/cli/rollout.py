"""``abllm kill``, ``abllm resume`` and ``abllm rollout status|advance|rollback|run``.

Every command takes ``--store URL`` (the event store; state lives in its database) and
``--state URL`` (a separate state backend, e.g. ``redis://…``). A kill or a stage change reaches
every gateway process within a second through the state backend's push channel.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from abllm.cli.common import console, fail, load_config, print_json
from abllm.cli.statecmd import (
    CONFIG_HELP,
    STATE_HELP,
    STORE_HELP,
    WAIT_HELP,
    _change,
    _known,
    _open,
    _show,
    default_actor,
)
from abllm.errors import AbllmError


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
