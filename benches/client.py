"""The Python SDK's costs, each next to its peer in the same run.

- ``assign``: ``abllm.Client.assign`` (pure assignment + exposure bookkeeping + the exposure
  event into an in-process pipeline) against the growthbook SDK's ``run`` with a tracking
  callback (its assignment + exposure hook), new units and repeat units;
- ``wrap_openai``: median latency of one chat call through ``client.wrap_openai(OpenAI())``
  against the same ``OpenAI`` client unwrapped, plain and streaming, on a zero-delay fake
  upstream (benches/gateway.py's, in a subprocess): the difference is the SDK's overhead;
- ``events``: events/s from ``Client`` to a live ``abllm`` server (``POST /v1/events``, DuckDB
  store) against the same events written in-process (``Client(store=...)``).

Prints one JSON document. Usage: python benches/client.py [--calls 2000] [--units 100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook
from openai import OpenAI

from abllm import Client
from abllm.config import Experiment, loads_experiments
from abllm.events import open_store
from abllm.server import ServerThread, create_app
from gateway import free_port, start, stop  # benches/gateway.py: its zero-delay upstream

CONFIG = """
experiments:
  - id: exp_bench
    variants:
      - {id: control, control: true, llm: {provider: openai, model: gpt-4o-mini,
         system_prompt: "Be concise."}}
      - {id: warm, llm: {provider: openai, model: gpt-4o-mini, system_prompt: "Be warm.",
         temperature: 0.7}}
"""
MESSAGES = [{"role": "user", "content": "Summarize: the quarterly numbers are in."}]


def median_us(fn: Callable[[str], Any], units: list[str]) -> float:
    samples = []
    clock = time.perf_counter_ns
    for u in units:
        t = clock()
        fn(u)
        samples.append(clock() - t)
    return statistics.median(samples) / 1000


def bench_assign(exp: Experiment, tmp: Path, n: int) -> dict[str, Any]:
    units = [f"user-{i}" for i in range(n)]
    tracked: list[Any] = []

    def on_viewed(*args: Any, **kwargs: Any) -> None:  # the SDK's exposure hook
        tracked.append(args or kwargs)

    gb = GrowthBook(attributes={"id": ""}, on_experiment_viewed=on_viewed)
    gb_exp = GBExperiment(  # as benches/assign.py: the same hashing, so answers agree
        key=exp.id,
        variations=[v.id for v in exp.variants],
        weights=exp.weights,
        coverage=exp.traffic / 100,
        seed=exp.hash_seed,
        hashVersion=2,
    )

    def gb_run(u: str) -> str:
        gb.set_attributes({"id": u})
        return str(gb.run(gb_exp).value)

    with Client(
        loads_experiments(CONFIG), store="duckdb:///:memory:", spool_dir=tmp / "spool-a"
    ) as client:
        new_us = median_us(lambda u: client.assign(exp.id, u), units)
        repeat_us = median_us(lambda u: client.assign(exp.id, u), units)
        mismatches = sum(client.assign(exp.id, u).variant_id != gb_run(u) for u in units[:5000])
    gb_new_us = median_us(gb_run, [f"gb-{i}" for i in range(n)])
    gb_repeat_us = median_us(gb_run, [f"gb-{i}" for i in range(n)])
    return {
        "abllm_client_new_unit_us": round(new_us, 2),
        "abllm_client_repeat_unit_us": round(repeat_us, 2),
        "growthbook_sdk_new_unit_us": round(gb_new_us, 2),
        "growthbook_sdk_repeat_unit_us": round(gb_repeat_us, 2),
        "mismatches_vs_growthbook_of_5000": mismatches,
    }


def bench_wrap(tmp: Path, calls: int) -> dict[str, Any]:
    port = free_port()
    gateway_bench = Path(__file__).with_name("gateway.py")
    proc = start([sys.executable, str(gateway_bench), "--upstream", str(port)], port)
    try:
        raw = OpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        out: dict[str, Any] = {}
        with Client(
            loads_experiments(CONFIG), store="duckdb:///:memory:", spool_dir=tmp / "spool-w"
        ) as client:
            llm = client.wrap_openai(raw)
            for stream in (False, True):

                def direct(u: str, stream: bool = stream) -> None:
                    # the same request the variant sends, so only the SDK's work differs
                    r = raw.chat.completions.create(
                        model="gpt-4o-mini",
                        user=u,
                        messages=[{"role": "system", "content": "Be warm."}, *MESSAGES],
                        temperature=0.7,
                        stream=stream,
                        **({"stream_options": {"include_usage": True}} if stream else {}),
                    )
                    if stream:
                        list(r)

                def wrapped(u: str, stream: bool = stream) -> None:
                    r = llm.chat.completions.create(
                        model="exp_bench", user=u, messages=MESSAGES, stream=stream
                    )
                    if stream:
                        list(r)

                # every unit in the `warm` arm: the direct call sends what `warm` sends
                arm = [
                    u
                    for u in (f"user-{i}" for i in range(4 * calls))
                    if client.assign("exp_bench", u).variant_id == "warm"
                ]
                units = arm[:calls]
                median_us(direct, units[:200])  # warm up both paths
                median_us(wrapped, units[:200])
                d = median_us(direct, units)
                w = median_us(wrapped, units)
                kind = "stream" if stream else "json"
                out[f"{kind}_direct_us"] = round(d, 1)
                out[f"{kind}_wrapped_us"] = round(w, 1)
                out[f"{kind}_overhead_us"] = round(w - d, 1)
            client.flush(30)
            assert client.store is not None
            rows = client.store.query("SELECT count(*) FROM abllm_events WHERE type = 'llm_call'")
            out["llm_call_events"] = rows[0][0]
        return out
    finally:
        stop(proc)


def bench_events(tmp: Path, n: int) -> dict[str, Any]:
    config = loads_experiments(CONFIG)
    units = [f"user-{i}" for i in range(n)]

    def run(client: Client) -> float:
        t = time.perf_counter()
        for u in units:
            client.track("exp_bench", u, rating=4)
        assert client.flush(120)
        return n / (time.perf_counter() - t)

    store = open_store(f"duckdb:///{tmp / 'server.duckdb'}")
    app = create_app(config, store, spool_dir=tmp / "server-spool")
    with ServerThread(app) as server, Client(server_url=server.url) as client:
        http_rate = run(client)
        delivered = store.count("exp_bench")
    store.close()
    with Client(
        config, store=f"duckdb:///{tmp / 'local.duckdb'}", spool_dir=tmp / "spool-e"
    ) as client:
        local_rate = run(client)
    return {
        "server_mode_events_per_s": round(http_rate),
        "in_process_events_per_s": round(local_rate),
        "server_mode_delivered": delivered,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--units", type=int, default=100_000)
    args = parser.parse_args()
    exp = loads_experiments(CONFIG).experiments[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "bench": "client",
            "assign": bench_assign(exp, Path(tmp), args.units),
            "wrap_openai": bench_wrap(Path(tmp), args.calls),
            "events": bench_events(Path(tmp), args.units // 2),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
