"""``abllm demo``: a whole experiment in under a minute, offline.

Starts the gateway on a fresh embedded store with the ``sim`` provider and the summarization
example, sends a few thousand simulated users through it with the official ``openai`` client,
posts each user's feedback drawn from the served variant's simulated quality, and prints the
results table and the recommendation (the same renderer as ``abllm analyze``).
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

DEFAULT_USERS = 3000
CONCURRENCY = 32
#: Simulated waits are scaled down this much; the recorded latencies stay realistic because
#: the sim provider reports its simulated timings.
TIME_SCALE = 0.002
FEEDBACK_RATE = 0.6


def _example() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        path = root / "examples" / "summarize.yaml"
        if path.is_file():
            return path
    raise ConfigError(["examples/summarize.yaml not found; pass --config PATH"])


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


async def _traffic(base_url: str, exp: Experiment, users: int, seed: int, tally: Tally) -> None:
    """Each simulated user asks once; most then rate the answer they got."""
    import aiohttp
    from openai import AsyncOpenAI, OpenAIError
    from rich.progress import Progress

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

        async def one(i: int, progress: Progress, task: object) -> None:
            unit = f"demo-user-{seed}-{i}"
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
            progress.advance(task)  # type: ignore[arg-type]

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"{users:,} simulated users", total=users)
            await asyncio.gather(*(one(i, progress, task) for i in range(users)))
    await client.close()


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""

    @app.command()
    def demo(
        no_serve: bool = typer.Option(
            False, "--no-serve", help="exit after printing the results (else serve until Ctrl-C)"
        ),
        users: int = typer.Option(DEFAULT_USERS, "--users", min=10, help="simulated users"),
        config: Path | None = typer.Option(
            None, "--config", help="experiment file (default: examples/summarize.yaml)"
        ),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="where the demo's store lives (default: a fresh temp dir)"
        ),
        port: int = typer.Option(0, "--port", help="TCP port (default: any free port)"),
        seed: int = typer.Option(7, "--seed", help="seed of the simulated users"),
    ) -> None:
        """Run a simulated experiment through the gateway and print the results."""
        from abllm.analysis import analyze, print_result
        from abllm.events import open_store
        from abllm.server import ServerThread, create_app

        try:
            path = config or _example()
        except ConfigError as exc:
            fail(exc)
        experiments = _fast(load_config(path), TIME_SCALE)
        if not experiments.experiments:
            fail(ConfigError([f"{path}: no experiments"]))
        exp = experiments.experiments[0]
        root = data_dir or Path(tempfile.mkdtemp(prefix="abllm-demo-"))
        root.mkdir(parents=True, exist_ok=True)
        store = open_store(f"duckdb:///{root / 'events.duckdb'}")
        app = create_app(experiments, store, spool_dir=root / "spool")
        server = ServerThread(app, port=port).start()
        try:
            console.print(
                f"abllm demo: experiment [bold]{exp.id}[/] "
                f"({', '.join(v.id for v in exp.variants)}) on {server.url}/v1",
                highlight=False,
                soft_wrap=True,
            )
            started = time.monotonic()
            tally = Tally()
            asyncio.run(_traffic(server.url, exp, users, seed, tally))
            console.print(
                f"sent {tally.sent:,} requests ({tally.failed} failed) and {tally.feedback:,} "
                f"ratings in {time.monotonic() - started:.1f} s",
                highlight=False,
            )
            app.state.abllm.pipeline.flush()
            print_result(analyze(exp, store), console)
            if not no_serve:
                console.print(
                    f"\nThe gateway keeps serving at {server.url}/v1 "
                    f"(results: {server.url}/v1/experiments/{exp.id}/results); Ctrl-C to stop.",
                    highlight=False,
                    soft_wrap=True,
                )
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            store.close()
