"""The top-level package exports a small, sorted, explicit API (as httpx does)."""

from __future__ import annotations

import abllm


def test_all_is_sorted_and_complete() -> None:
    assert abllm.__all__ == sorted(abllm.__all__)
    public = {name for name in vars(abllm) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(abllm, name)).__name__ == "module"}
    assert public - modules == set(abllm.__all__)
