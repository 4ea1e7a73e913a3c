"""A stand-in gateway process for the multi-process tests: a StateView printing what it sees.

Usage: ``python view_process.py STATE_URL EXPERIMENT [--block-reconnect SECONDS]``. Prints
``ready`` and then one JSON line whenever the state version or the push channel's health
changes (``t`` is ``time.time()``), until stdin closes. ``--block-reconnect`` makes the push
listener fail to reconnect for that long after its connection drops, so the test can watch
polling carry changes on its own.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from abllm.state import StateView, open_state


def block_reconnects(seconds: float) -> None:
    """After the first successful connect, every reconnect within ``seconds`` fails."""
    from abllm.state import postgres, redis

    for cls in (postgres._PgListener, redis._RedisListener):
        connect = cls._connect
        state = {"connected": 0, "blocked_until": 0.0}

        def patched(self, _connect=connect, _state=state):  # type: ignore[no-untyped-def]
            if _state["connected"] and time.monotonic() < _state["blocked_until"]:
                raise ConnectionError("reconnect blocked by the test")
            if _state["connected"] and not _state["blocked_until"]:
                _state["blocked_until"] = time.monotonic() + seconds
                raise ConnectionError("reconnect blocked by the test")
            _state["connected"] += 1
            return _connect(self)

        cls._connect = patched  # type: ignore[method-assign]


def main() -> None:
    url, experiment = sys.argv[1], sys.argv[2]
    if "--block-reconnect" in sys.argv:
        block_reconnects(float(sys.argv[sys.argv.index("--block-reconnect") + 1]))
    view = StateView(open_state(url), poll_interval_s=0.2, healthy_poll_s=5.0).start()
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    deadline = time.monotonic() + 10
    while view.store.kind != "embedded" and not view.push_alive and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    seen: tuple[int, bool] = (-1, False)
    while not stop.is_set():
        state = view.state(experiment)
        version = state.version if state is not None else 0
        if (version, view.push_alive) != seen:
            seen = (version, view.push_alive)
            rt = view.get(experiment)
            line = {
                "t": time.time(),
                "version": version,
                "killed": rt.killed,
                "traffic": rt.traffic,
                "push": view.push_alive,
            }
            print(json.dumps(line), flush=True)
        time.sleep(0.002)
    view.close()


if __name__ == "__main__":
    main()
