"""Start-up time of ``abllm --help`` beside ``python -c "import typer"`` (its floor), same run.

Prints one JSON object: the median of several runs of each, in seconds, and their ratio
(the target is at most 3x: ``--help`` imports no command module).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 9
ABLLM = str(Path(sys.executable).with_name("abllm"))


def _median_seconds(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    typer_s = _median_seconds([sys.executable, "-c", "import typer"])
    help_s = _median_seconds([ABLLM, "--help"])
    validate_s = _median_seconds([ABLLM, "validate", "--help"])
    print(
        json.dumps(
            {
                "bench": "cli_startup",
                "import_typer_s": round(typer_s, 3),
                "abllm_help_s": round(help_s, 3),
                "abllm_validate_help_s": round(validate_s, 3),
                "help_over_typer": round(help_s / typer_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
