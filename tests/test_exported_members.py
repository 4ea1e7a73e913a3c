"""The top-level package exports a small, sorted, explicit API (as httpx does), lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import abllm

HEAVY = (
    "fastapi",
    "starlette",
    "duckdb",
    "aiohttp",
    "prometheus_client",
    "opentelemetry",
    "openai",
)


def test_all_is_sorted_and_complete() -> None:
    assert abllm.__all__ == sorted(abllm.__all__)
    for name in abllm.__all__:
        assert getattr(abllm, name) is not None
    assert set(abllm.__all__) <= set(dir(abllm))


def test_assign_is_the_package() -> None:
    import abllm.assign as a

    assert type(a).__name__ == "module"
    from abllm.assign import assign

    assert callable(assign)


@pytest.mark.parametrize(
    "module",
    [
        "abllm",
        "abllm.stats",
        "abllm.assign",
        "abllm.config",
        "abllm.rollout.policy",
        "abllm.telemetry",
        "abllm.integrations",
    ],
)
def test_pure_cores_load_no_server_sdk_or_driver(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", f"import {module} loaded {out.strip()}"
