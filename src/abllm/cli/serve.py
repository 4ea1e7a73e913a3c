"""``abllm serve CONFIG``: the gateway and API under uvicorn (``--workers N``: N processes on one
port under a supervisor, :mod:`abllm.server.workers`)."""

from __future__ import annotations

import sys
from contextlib import ExitStack, suppress
from pathlib import Path

import typer

from abllm.cli.common import console, fail, load_config
from abllm.errors import AbllmError, ValidationError


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command."""

    @app.command()
    def serve(
        config: Path = typer.Argument(..., help="experiment YAML file"),
        store: str | None = typer.Option(
            None, "--store", help="event store URL (default: $ABLLM_STORE or ./abllm-data)"
        ),
        host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
        port: int = typer.Option(8080, "--port", help="TCP port"),
        default_experiment: str | None = typer.Option(
            None,
            "--default-experiment",
            help="experiment for requests that name none (default: the only one, if one)",
        ),
        spool_dir: Path = typer.Option(
            Path("./abllm-data/spool"),
            "--spool-dir",
            help="where events wait while the store is down",
        ),
        api_key: list[str] = typer.Option(
            [],
            "--api-key",
            help="sdk key: inference, events, feedback, config, pages (repeatable; also "
            "$ABLLM_API_KEYS)",
        ),
        api_key_file: Path | None = typer.Option(
            None, "--api-key-file", help="sdk keys, one a line (keeps them out of ps)"
        ),
        admin_key: list[str] = typer.Option(
            [],
            "--admin-key",
            help="admin key: also /v1/admin/* and the dashboard's controls "
            "(repeatable; also $ABLLM_ADMIN_KEYS)",
        ),
        admin_key_file: Path | None = typer.Option(
            None, "--admin-key-file", help="admin keys, one a line"
        ),
        metrics_open: bool = typer.Option(
            False, "--metrics-open", help="serve /metrics without a key (private-network scraper)"
        ),
        rate_limit: float | None = typer.Option(
            None, "--rate-limit", help="requests a second per key (429 + Retry-After past it)"
        ),
        insecure: bool = typer.Option(
            False, "--insecure", help="allow --host beyond loopback with no API key (warns)"
        ),
        sticky: str = typer.Option(
            "auto",
            "--sticky",
            help="keep units' first variant when weights move: auto (experiments with weight "
            "stages, a bandit or a fallback unit), always or never",
        ),
        state: str | None = typer.Option(
            None,
            "--state",
            help="runtime state URL (kill switch, rollout stage; default: beside the store)",
        ),
        controller: bool = typer.Option(
            True,
            "--controller/--no-controller",
            help="run the rollout controller in this process (guardrails, stages, bandits; "
            "one process acts per experiment, by lease)",
        ),
        workers: int = typer.Option(
            1,
            "--workers",
            help="server processes on the port (each with its own spool; >1 needs a server "
            "store), restarted when they die",
        ),
    ) -> None:
        """Serve the OpenAI-compatible gateway (POST /v1/chat/completions) and the API."""
        from abllm.server import workers as multi

        try:
            multi.check_workers(workers, store, state)
        except AbllmError as exc:
            fail(exc)
        if workers > 1:
            load_config(config)  # refuse a bad file once, before starting any worker
            try:
                listening = multi.listen_socket(host, port)
            except OSError as exc:
                fail(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})")
            bound = listening.getsockname()[1]
            console.print(
                f"abllm serve: {workers} workers on http://{host}:{bound}/v1", highlight=False
            )
            raise typer.Exit(
                multi.Supervisor(listening, workers, multi.worker_argv(sys.argv[1:])).run()
            )
        from abllm.assign.sticky import SelectiveStickyAssigner, StickyAssigner
        from abllm.events import open_store
        from abllm.gateway import GatewaySettings
        from abllm.rollout import register_experiments
        from abllm.server import create_app
        from abllm.server import serve as run
        from abllm.server.auth import KeyConfig, check_bind
        from abllm.state import open_state
        from abllm.state.startup import CACHE_NAME, start_view
        from abllm.state.sticky import open_sticky

        experiments = load_config(config)
        with ExitStack() as opened:  # closed in reverse order, on errors too
            try:
                # Start during a store outage: events spool until the store is back.
                event_store = open_store(store, defer_connect=True)
                opened.callback(event_store.close)
                # Runtime state is read from memory on every request; the view follows changes
                # made by other processes (`abllm kill`, the controller) by push or polling.
                state_store = open_state(state, store_url=store)
                opened.callback(state_store.close)
                from abllm.state.keycache import KeyCache
                from abllm.state.keys import keys_for

                keys = KeyConfig.gather(api_key, admin_key, api_key_file, admin_key_file)
                managed = KeyCache(keys_for(state_store))
                keyed = bool(keys.sdk or keys.admin) or managed.any()
                warning = check_bind(host, keyed, insecure)  # refused: exit 2
                if warning:
                    console.print(warning, style="bold red", highlight=False, markup=False)
                # Record each definition (stage 0 of its rollout plan the first time; a running
                # experiment whose variants changed without a version bump is refused), or, with
                # the backend down, serve the cached state and register once it answers.
                view = start_view(
                    state_store,
                    lambda s: register_experiments(s, experiments.experiments, actor="abllm serve"),
                    cache_path=spool_dir / CACHE_NAME,
                )
                opened.callback(view.close)
                assigner: StickyAssigner | SelectiveStickyAssigner | None = None
                if sticky not in ("auto", "always", "never"):
                    raise ValidationError(f"--sticky {sticky!r}: use auto, always or never")
                if sticky != "never":
                    sticky_store = open_sticky(state, store_url=store)
                    opened.callback(sticky_store.close)
                    assigner = StickyAssigner(sticky_store)
                    if sticky == "auto":
                        assigner = SelectiveStickyAssigner(assigner)
                app = create_app(
                    experiments,
                    event_store,
                    state=view,
                    state_store=state_store,
                    assigner=assigner,
                    api_keys=keys.sdk,
                    admin_keys=keys.admin,
                    managed_keys=managed,
                    metrics_open=metrics_open,
                    rate_limit=rate_limit,
                    settings=GatewaySettings(default_experiment=default_experiment),
                    spool_dir=spool_dir,
                )
                if controller:  # analysis runs on its own thread, off the event loop
                    from abllm.rollout.serving import start_controller

                    loop = start_controller(
                        state_store, experiments, event_store, actor="abllm serve"
                    )
                    opened.callback(loop.close)  # before the stores close: LIFO
                    app.state.abllm.controller = loop
                from abllm.cli.reading import announce, withdraw

                # readers of the embedded file (analyze, events export) go through this server
                opened.callback(withdraw, announce(store, host, port))
            except AbllmError as exc:
                fail(exc)
            ids = ", ".join(e.id for e in experiments.experiments) or "none"
            console.print(
                f"abllm gateway on http://{host}:{port}/v1 (experiments: {ids}); Ctrl-C to stop",
                highlight=False,
                soft_wrap=True,
            )
            # uvicorn re-raises Ctrl-C after its graceful shutdown: a normal way to stop.
            with suppress(KeyboardInterrupt):
                run(app, host=host, port=port, log_level="warning", sock=multi.inherited_socket())
