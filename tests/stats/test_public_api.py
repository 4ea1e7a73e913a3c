"""The public surface of abllm.stats is explicit, sorted and importable (httpx style)."""

from __future__ import annotations

import abllm.stats as stats


def test_all_is_sorted_and_complete() -> None:
    names = stats.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n.lower() if n.islower() else n))
    for name in names:
        assert hasattr(stats, name), name
    public = {
        n
        for n in dir(stats)
        if not n.startswith("_") and not isinstance(getattr(stats, n), type(stats))
    }
    assert public == set(names)


def test_pure_core_imports_no_io_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, abllm.stats; "
        "bad = [m for m in ('duckdb','psycopg','redis','aiohttp','fastapi','httpx','pandas') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
