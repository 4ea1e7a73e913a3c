"""``abllm demo``: a whole staged rollout in under a minute, offline.

Starts the gateway on a fresh embedded store with the ``sim`` provider and the rollout example
(``examples/rollout.yaml``), then plays the loop on a simulated clock (:mod:`.demo_story`):
simulated users go through the gateway with the official ``openai`` client and rate the answer
of the variant that served them, and the real rollout controller checks every twelve simulated
hours — canary, ramps, a guardrail pausing the failing arm, the SHIP recommendation with its
lift and CI, the winner rollout to 100 %, then the audit trail and the results table.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from abllm.cli.common import console, fail, load_config
from abllm.config import Experiment, ExperimentFile
from abllm.errors import ConfigError

DEFAULT_USERS = 300  # new users per simulated half-day
CONCURRENCY = 32
#: Simulated waits are scaled down this much; the recorded latencies stay realistic because
#: the sim provider reports its simulated timings.
TIME_SCALE = 0.002
FEEDBACK_RATE = 0.6


def _example() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        path = root / "examples" / "rollout.yaml"
        if path.is_file():
            return path
    raise ConfigError(["examples/rollout.yaml not found; pass --config PATH"])


def _fast(config: ExperimentFile, time_scale: float) -> ExperimentFile:
    """The same experiments with the sim's real waits scaled by ``time_scale``."""
    experiments = []
    for exp in config.experiments:
        variants = []
        for v in exp.variants:
            sim = v.llm.sim.model_copy(update={"time_scale": time_scale})
            variants.append(v.model_copy(update={"llm": v.llm.model_copy(update={"sim": sim})}))
        experiments.append(exp.model_copy(update={"variants": variants}))
    return ExperimentFile(experiments=experiments)


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    feedback: int = 0


async def _traffic(
    base_url: str, exp: Experiment, users: int, seed: int, tally: Tally, batch: int = 0
) -> None:
    """Each simulated user asks once; most then rate the answer they got."""
    import aiohttp
    from openai import AsyncOpenAI, OpenAIError

    from abllm.providers import simulate_feedback

    rng = random.Random(seed)
    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key="demo", max_retries=0)
    gate = asyncio.Semaphore(CONCURRENCY)
    texts = [
        "Quarterly revenue rose 12% while support tickets fell; churn is flat.",
        "The migration to the new billing system finished two weeks late but under budget.",
        "Users ask for offline mode, faster search and clearer pricing pages.",
    ]
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> None:
            unit = f"demo-user-{seed}-{batch}-{i}"
            urng = random.Random(rng.random())
            async with gate:
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model=exp.id,
                        messages=[{"role": "user", "content": urng.choice(texts)}],
                        user=unit,
                    )
                    tally.sent += 1
                    if urng.random() < FEEDBACK_RATE:
                        variant = exp.variant(raw.headers["x-abllm-variant"])
                        body = {
                            "trace_id": raw.headers["x-abllm-trace-id"],
                            **simulate_feedback(variant.llm.sim, urng),
                        }
                        async with http.post(f"{base_url}/v1/feedback", json=body) as resp:
                            if resp.status == 200 and (await resp.json()).get("recorded"):
                                tally.feedback += 1
                except OpenAIError:
                    tally.failed += 1

        await asyncio.gather(*(one(i) for i in range(users)))
    await client.close()


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""

    @app.command()
    def demo(
        no_serve: bool = typer.Option(
            False, "--no-serve", help="exit after the story (else serve until Ctrl-C)"
        ),
        users: int = typer.Option(
            DEFAULT_USERS, "--users", min=10, help="new simulated users per check"
        ),
        config: Path | None = typer.Option(
            None, "--config", help="experiment file (default: examples/rollout.yaml)"
        ),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="where the demo's store lives (default: a fresh temp dir)"
        ),
        port: int = typer.Option(0, "--port", help="TCP port (default: any free port)"),
        seed: int = typer.Option(7, "--seed", help="seed of the simulated users"),
    ) -> None:
        """Play a staged rollout through the gateway on a simulated clock."""
        try:
            path = config or _example()
        except ConfigError as exc:
            fail(exc)
        experiments = _fast(load_config(path), TIME_SCALE)
        if not experiments.experiments:
            fail(ConfigError([f"{path}: no experiments"]))
        root = data_dir or Path(tempfile.mkdtemp(prefix="abllm-demo-"))
        root.mkdir(parents=True, exist_ok=True)
        _run(experiments, root, port=port, users=users, seed=seed, serve=not no_serve)


def _run(
    experiments: ExperimentFile, root: Path, *, port: int, users: int, seed: int, serve: bool
) -> None:
    from abllm.cli.demo_story import hours, play, print_audit, print_ship
    from abllm.events import open_store
    from abllm.rollout import AnalysisResults, RolloutController, open_serving_state
    from abllm.server import ServerThread, create_app
    from abllm.state import utcnow

    exp = experiments.experiments[0]
    store_url = f"duckdb:///{root / 'events.duckdb'}"
    store = open_store(store_url)
    runtime = open_serving_state(experiments, store_url=store_url, actor="abllm demo")
    app = create_app(
        experiments, store, state=runtime.view, state_store=runtime.store, spool_dir=root / "spool"
    )
    server = ServerThread(app, port=port).start()
    results = AnalysisResults(store)
    t0 = utcnow()
    controller = RolloutController(runtime.store, experiments.experiments, results, hooks=[])
    tally = Tally()

    def send(batch: int, n: int) -> int:
        asyncio.run(_traffic(server.url, exp, n, seed, tally, batch))
        assert app.state.abllm.pipeline is not None
        app.state.abllm.pipeline.flush()
        return n

    try:
        console.print(
            f"abllm demo: [bold]{exp.id}[/] ({', '.join(v.id for v in exp.variants)}) "
            f"on {server.url}/v1",
            highlight=False,
        )
        started = time.monotonic()
        story = play(
            console, exp, controller, runtime.store, send, lambda: results.last.get(exp.id), t0,
            users,
        )  # fmt: skip
        console.print(
            f"\n{tally.sent:,} requests ({tally.failed} failed), {tally.feedback:,} ratings, "
            f"{story.rounds} checks in {time.monotonic() - started:.0f} s of real time.",
            highlight=False,
        )
        print_ship(console, story, t0)
        final = story.state
        if final is not None:
            end = final.updated_at or t0
            console.print(
                f"\nAt {hours(t0, end)}: {exp.id} is {final.status or 'running'}"
                + (f", winner {final.winner} serves 100 %." if final.winner else "."),
                highlight=False,
            )
        print_audit(console, runtime.store.audit(exp.id), t0)
        _next_steps(server.url, exp.id, store_url, serve)
        if serve:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        controller.close()
        runtime.close()
        store.close()


def _next_steps(url: str, experiment_id: str, store_url: str, serving: bool) -> None:
    store = f"--store {store_url}"
    if serving:
        console.print(f"\nDashboard: {url}/dashboard/experiments/{experiment_id}", highlight=False)
    else:  # the demo's own server stops with it: say how to bring the dashboard back
        console.print(
            f"\nDashboard: http://127.0.0.1:8080/dashboard/experiments/{experiment_id}\n"
            "once the demo's store is served again (the demo's server stopped with it):\n"
            f"  abllm serve examples/rollout.yaml --port 8080 \\\n      {store}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    console.print("Next, try:", highlight=False)
    for line in (
        f"abllm rollout status {experiment_id} \\\n      {store}",
        f"abllm analyze examples/rollout.yaml -e {experiment_id} \\\n      {store}",
        f"abllm events export --experiment {experiment_id} --format jsonl \\\n      {store}",
        "abllm serve examples/rollout.yaml   # the controller runs inside serve",
    ):
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    if serving:
        console.print(
            f"The gateway keeps serving at {url}/v1 "
            f"(results: {url}/v1/experiments/{experiment_id}/results); Ctrl-C to stop.",
            highlight=False,
            soft_wrap=True,
        )
