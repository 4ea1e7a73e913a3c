"""Gateway overhead: direct vs through abllm vs through LiteLLM's proxy, same fake upstream.

Prints one JSON object: requests/s and p50/p99 latency at concurrency 1, 16 and 64, streaming
and not, for three targets in the same run:

- ``direct``: the load generator talks to the fake upstream;
- ``abllm``: ``abllm serve`` (one uvicorn worker, events into an embedded DuckDB store) in front
  of it, with a two-arm experiment on the OpenAI-compatible provider;
- ``litellm``: LiteLLM's proxy (``litellm[proxy]``, one worker) in front of the same upstream.

The fake upstream answers at once (httptools on a raw uvloop protocol, a few µs a request) with
a fixed completion or a 12-event SSE stream. Upstream and proxy share core 0; the load generator
(an aiohttp client) runs pinned to
core 1 (``os.sched_setaffinity``), as in DESIGN.md's measurements.

LiteLLM is looked for in ``$ABLLM_BENCH_LITELLM`` (path to its ``litellm`` executable), on PATH,
in this venv, and in ``~/.cache/abllm-bench/litellm-venv``; ``--install-litellm`` creates that
venv with ``pip install 'litellm[proxy]'``. A venv of its own, because installing
``litellm[proxy]`` into the project's venv downgrades ``openai`` (3.x to 2.x) and ``rich``. If it
cannot be found or started, its rows are left out and ``litellm.available`` says why.

Usage: ``python benches/gateway.py [--seconds 3] [--concurrency 1,16,64]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPT = {"role": "user", "content": "Summarize: the quarterly numbers are in."}
ANSWER = "The quarterly numbers are in and revenue is up."
USAGE = {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22}
SERVER_CORE, LOAD_CORE = 0, 1


# -- the fake upstream (runs in a subprocess) -----------------------------------------------
def _responses() -> tuple[bytes, bytes]:
    completion = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    ).encode()
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1}
    base["model"] = "gpt-4o-mini"

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else []
        return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

    words = ANSWER.split(" ")
    stream = b"".join(
        [event({"role": "assistant", "content": ""})]
        + [event({"content": w + " "}) for w in words]
        + [event({}, "stop"), event({}, None, usage=USAGE), b"data: [DONE]\n\n"]
    )
    json_resp = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(completion)}\r\n\r\n".encode()
        + completion
    )
    sse_resp = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        + f"Content-Length: {len(stream)}\r\n\r\n".encode()
        + stream
    )
    return json_resp, sse_resp


def run_upstream(port: int) -> None:
    """A zero-delay OpenAI-compatible upstream: httptools parser on a raw uvloop protocol.

    An aiohttp.web server would spend ≈ 150 µs a request on the proxy's core; this one spends a
    few, so the figures measure the proxies rather than the fake behind them.
    """
    import httptools
    import uvloop

    os.sched_setaffinity(0, {SERVER_CORE})
    json_resp, sse_resp = _responses()

    class Upstream(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.body: list[bytes] = []
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                assert self.transport is not None
                self.transport.close()

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            body = b"".join(self.body).replace(b" ", b"")
            self.body.clear()
            assert self.transport is not None
            self.transport.write(sse_resp if b'"stream":true' in body else json_resp)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(serve())


# -- helpers ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open within {timeout_s} s")


def pinned() -> None:
    os.sched_setaffinity(0, {SERVER_CORE})


def start(cmd: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None):
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pinned, env=env, cwd=ROOT
    )
    wait_port(port, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(root: int) -> float:
    """utime + stime of a process and its descendants (``/proc``), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [child for child, (ppid, _) in stats.items() if ppid == pid]
    return total


LITELLM_VENV = Path.home() / ".cache" / "abllm-bench" / "litellm-venv"


def install_litellm() -> str | None:
    """Create LITELLM_VENV with litellm[proxy]; the reason on failure."""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "litellm[proxy]"], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"pip install 'litellm[proxy]' failed: {exc}"
    return None


def find_litellm() -> str | None:
    for candidate in (
        os.environ.get("ABLLM_BENCH_LITELLM"),
        shutil.which("litellm"),
        str(Path(sys.executable).parent / "litellm"),
        str(LITELLM_VENV / "bin" / "litellm"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


# -- load generator ---------------------------------------------------------------------------
async def load(
    url: str, model: str, stream: bool, concurrency: int, seconds: float, pids: tuple[int, ...] = ()
) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop_at = 0.0
    measuring = False

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < stop_at:
            body = {"model": model, "messages": [PROMPT], "user": f"u{w}-{i % 500}"}
            if stream:
                body["stream"] = True
            i += 1
            t0 = time.perf_counter()
            try:
                async with session.post(url, json=body) as resp:
                    data = await resp.read()
                    ok = resp.status == 200 and (not stream or data.endswith(b"[DONE]\n\n"))
            except aiohttp.ClientError:
                ok = False
            if measuring:
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Authorization": "Bearer sk-bench"}
    ) as session:
        stop_at = time.perf_counter() + min(1.0, seconds / 3)  # warm-up
        await asyncio.gather(*(worker(session, w) for w in range(concurrency)))
        measuring = True
        cpu0 = [cpu_seconds(pid) for pid in pids]
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker(session, w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = [cpu_seconds(pid) - c0 for pid, c0 in zip(pids, cpu0, strict=True)]
    latencies.sort()
    n = len(latencies)
    row: dict[str, Any] = {
        "requests": n,
        "errors": errors,
        "rps": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 3) if n else None,
    }
    if pids and n:
        # CPU time per request of the proxy and of the upstream: steadier than requests/s on a
        # machine shared with other work, and what bounds throughput on one core.
        row["proxy_cpu_us_per_request"] = round(cpu[0] / n * 1e6, 1)
        row["upstream_cpu_us_per_request"] = round(cpu[1] / n * 1e6, 1)
    return row


def measure(
    target: str, url: str, model: str, args: argparse.Namespace, pids: tuple[int, ...] = ()
) -> list[dict]:
    rows = []
    for stream in (False, True):
        for c in args.concurrency:
            row = asyncio.run(load(url, model, stream, c, args.seconds, pids))
            row = {"target": target, "stream": stream, "concurrency": c, **row}
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    return rows


# -- targets ----------------------------------------------------------------------------------
ABLLM_CONFIG = """
experiments:
  - id: bench
    variants:
      - id: control
        control: true
        llm: {{provider: openai, model: gpt-4o-mini, base_url: "http://127.0.0.1:{up}/v1",
               system_prompt: "Summarize concisely.", temperature: 0.3}}
      - id: treatment
        llm: {{provider: openai, model: gpt-4o-mini, base_url: "http://127.0.0.1:{up}/v1",
               system_prompt: "Summarize in one sentence.", temperature: 0.2}}
"""
LITELLM_CONFIG = """
model_list:
  - model_name: bench
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: "http://127.0.0.1:{up}/v1"
      api_key: sk-bench
litellm_settings:
  drop_params: true
  telemetry: false
general_settings:
  master_key: sk-bench
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    parser.add_argument("--targets", default="direct,abllm,litellm")
    parser.add_argument(
        "--install-litellm",
        action="store_true",
        help=f"pip install litellm[proxy] in {LITELLM_VENV}",
    )
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        run_upstream(args.upstream)
        return
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs 2 cores: one for the servers, one for the load generator")
    targets = args.targets.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="abllm-bench-"))
    up_port = free_port()
    upstream = start([sys.executable, __file__, "--upstream", str(up_port)], up_port)
    os.sched_setaffinity(0, {LOAD_CORE})
    results: list[dict] = []
    litellm_info: dict[str, Any] = {"available": False, "reason": "not requested"}
    try:
        if "direct" in targets:
            url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
            results += measure("direct", url, "gpt-4o-mini", args)
        if "abllm" in targets:
            cfg = tmp / "abllm.yaml"
            cfg.write_text(ABLLM_CONFIG.format(up=up_port))
            port = free_port()
            abllm = str(Path(sys.executable).parent / "abllm")
            cmd = [abllm, "serve", str(cfg), "--port", str(port)]
            cmd += ["--store", f"duckdb:///{tmp / 'events.duckdb'}", "--spool-dir", str(tmp)]
            proc = start(cmd, port, log=tmp / "abllm.log")
            try:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                results += measure("abllm", url, "bench", args, (proc.pid, upstream.pid))
            finally:
                stop(proc)
        if "litellm" in targets:
            litellm_info = run_litellm(up_port, upstream.pid, tmp, args, results)
    finally:
        stop(upstream)
    print(json.dumps(summary(results, litellm_info, args), indent=2))


def run_litellm(
    up_port: int, up_pid: int, tmp: Path, args: argparse.Namespace, results: list[dict]
) -> dict:
    exe = find_litellm()
    if exe is None and args.install_litellm:
        failure = install_litellm()
        if failure:
            return {"available": False, "reason": failure}
        exe = find_litellm()
    if exe is None:
        return {
            "available": False,
            "reason": "litellm not installed (pip install 'litellm[proxy]')",
        }
    cfg = tmp / "litellm.yaml"
    cfg.write_text(LITELLM_CONFIG.format(up=up_port))
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network: use the bundled price map
    }
    log = tmp / "litellm.log"
    cmd = [exe, "--config", str(cfg), "--port", str(port), "--num_workers", "1"]
    try:
        proc = start(cmd, port, env=env, log=log)
    except RuntimeError as exc:
        tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
        return {"available": False, "reason": f"litellm did not start: {exc}: {tail}"}
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        results += measure("litellm", url, "bench", args, (proc.pid, up_pid))
    finally:
        stop(proc)
    version = subprocess.run(
        [
            str(Path(exe).parent / "python"),
            "-c",
            "import importlib.metadata as m;print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {"available": True, "version": version or None, "workers": 1}


def summary(results: list[dict], litellm_info: dict, args: argparse.Namespace) -> dict:
    def cell(target: str, stream: bool, c: int) -> dict | None:
        return next(
            (
                r
                for r in results
                if (r["target"], r["stream"], r["concurrency"]) == (target, stream, c)
            ),
            None,
        )

    comparison: dict[str, Any] = {}
    for stream in (False, True):
        key = "stream" if stream else "json"
        direct = cell("direct", stream, 1)
        comp: dict[str, Any] = {}
        for target in ("abllm", "litellm"):
            one, sixteen = cell(target, stream, 1), cell(target, stream, 16)
            if one and direct and one["p50_ms"] is not None and direct["p50_ms"] is not None:
                comp[f"{target}_added_p50_ms_c1"] = round(one["p50_ms"] - direct["p50_ms"], 3)
            if sixteen:
                comp[f"{target}_rps_c16"] = sixteen["rps"]
        if comp.get("litellm_rps_c16") and comp.get("abllm_rps_c16"):
            comp["throughput_ratio_c16"] = round(comp["abllm_rps_c16"] / comp["litellm_rps_c16"], 1)
        if comp.get("litellm_added_p50_ms_c1") and "abllm_added_p50_ms_c1" in comp:
            comp["added_latency_ratio_c1"] = round(
                comp["abllm_added_p50_ms_c1"] / comp["litellm_added_p50_ms_c1"], 3
            )
        comparison[key] = comp
    return {
        "bench": "gateway",
        "seconds_per_cell": args.seconds,
        "cores": {"servers": SERVER_CORE, "load_generator": LOAD_CORE},
        "targets_at": "upstream and proxy share one core; load generator pinned to the other",
        "litellm": litellm_info,
        "targets": {"abllm": 3000, "abllm_stream": 2000, "abllm_added_p50_ms": 0.5},
        "comparison": comparison,
        "results": results,
    }


if __name__ == "__main__":
    main()
