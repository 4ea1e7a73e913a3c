"""Cost of the API-key check that runs before every request (``ApiKeyCheck.status``).

Prints one JSON object: microseconds per call for a keyless server, a configured sdk key, a
managed key (answered from the cache's snapshot), a wrong key and a session cookie.

Usage: ``python benches/auth_check.py [--calls 200000]``
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from abllm.server.auth import ApiKeyCheck
from abllm.state import open_state
from abllm.state.keycache import KeyCache
from abllm.state.keys import create_key, keys_for


def _per_call_us(check: ApiKeyCheck, headers: list[tuple[bytes, bytes]], calls: int) -> float:
    scope: dict[str, Any] = {"path": "/v1/chat/completions", "method": "POST", "headers": headers}
    start = time.perf_counter()
    for _ in range(calls):
        check.status(scope)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls
    state = open_state("memory://")
    _, managed = create_key(keys_for(state), "sdk", "bench")
    cache = KeyCache(keys_for(state), ttl_s=3600)
    keyed = ApiKeyCheck(["sdk-key"], ["admin-key"], managed=cache)
    cookie = keyed.sessions.issue(keyed.caller_of_key("sdk-key").name)  # type: ignore[union-attr]
    figures = {
        "keyless_us": _per_call_us(ApiKeyCheck(), [], calls),
        "static_key_us": _per_call_us(keyed, [(b"authorization", b"Bearer sdk-key")], calls),
        "managed_key_us": _per_call_us(
            keyed, [(b"authorization", b"Bearer " + managed.encode())], calls
        ),
        "wrong_key_us": _per_call_us(keyed, [(b"authorization", b"Bearer nope")], calls),
        "session_cookie_us": _per_call_us(
            keyed, [(b"cookie", f"abllm_session={cookie}".encode())], calls
        ),
    }
    state.close()
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
