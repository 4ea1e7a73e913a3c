"""``abllm power``: units per arm for a minimum detectable effect (or the MDE for a size).

By default the plan is for the test the decision rule runs with its defaults (always-valid
sequential boundary, Holm across the ``--arms − 1`` treatments, ``--min-units-per-arm`` floor),
so it agrees with ``recommendation.units_needed``; ``--fixed-horizon --correction none
--min-units-per-arm 0`` gives the textbook two-sample z calculation.
Pre-registration in one line (seed 000: "Run a power analysis before starting")::

    abllm power --baseline-mean 3.8 --sd 1.0 --mde 0.2 --alpha 0.05 --power 0.8
    abllm power --baseline-rate 0.12 --mde 0.1 --relative --daily-units 5000 --json
    abllm power --baseline-mean 3.8 --sd 1.0 --units-per-arm 2000
"""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from abllm.cli.common import console, fail, print_json
from abllm.config import DecisionRule
from abllm.errors import AbllmError
from abllm.stats import PowerPlan, plan

_RULE = DecisionRule()


def _rows(p: PowerPlan, solved_for_n: bool) -> list[tuple[str, str]]:
    rel = "-" if p.mde_relative is None else f"{p.mde_relative:.2%}"
    rows = [
        ("baseline", f"{p.baseline:g}"),
        ("sd per unit", f"{p.sd:.6g}"),
        ("mde (absolute)", f"{p.mde:.6g}" + ("" if solved_for_n else "  (solved)")),
        ("mde (relative)", rel),
        ("alpha", f"{p.alpha:g} ({p.alternative})"),
        ("power", f"{p.power:g}"),
        ("test", ("sequential" if p.sequential else "fixed horizon") + f", {p.correction}"),
        ("arms", str(p.arms)),
        ("units per arm", f"{p.units_per_arm:,}" + ("  (solved)" if solved_for_n else "")),
        ("total units", f"{p.total_units:,}"),
    ]
    if p.days is not None and p.daily_units is not None:
        rows.append(("days", f"{p.days} at {p.daily_units:,.0f} units/day"))
    return rows


def power_cmd(
    baseline_mean: float | None = typer.Option(
        None, "--baseline-mean", help="control mean of the metric per unit"
    ),
    sd: float | None = typer.Option(None, "--sd", help="standard deviation per unit"),
    baseline_rate: float | None = typer.Option(
        None, "--baseline-rate", help="control conversion rate (instead of mean and sd)"
    ),
    mde: float | None = typer.Option(None, "--mde", help="minimum detectable effect"),
    relative: bool = typer.Option(
        False, "--relative", help="--mde is a fraction of the baseline (0.05 = 5 %)"
    ),
    units_per_arm: int | None = typer.Option(
        None, "--units-per-arm", help="solve for the MDE at this many units per arm"
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="significance level"),
    power: float = typer.Option(0.8, "--power", help="probability of detecting the MDE"),
    one_sided: bool = typer.Option(False, "--one-sided", help="one-sided test"),
    arms: int = typer.Option(2, "--arms", help="number of arms, control included"),
    daily_units: float | None = typer.Option(
        None, "--daily-units", help="eligible units per day, to estimate the duration"
    ),
    sequential: bool = typer.Option(
        _RULE.sequential,
        "--sequential/--fixed-horizon",
        help="size for the always-valid test the rule decides on (decision.sequential)",
    ),
    correction: str = typer.Option(
        _RULE.correction, "--correction", help="holm, bh or none across treatments"
    ),
    min_units_per_arm: int = typer.Option(
        _RULE.min_units_per_arm,
        "--min-units-per-arm",
        help="floor on top of the power calculation (decision.min_units_per_arm)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Units per arm the decision rule needs to detect an effect, or the MDE for a size."""
    if correction not in ("holm", "bh", "none"):
        fail(f"--correction must be holm, bh or none, not {correction!r}")
    try:
        result = plan(
            mde=mde,
            baseline_mean=baseline_mean,
            sd=sd,
            baseline_rate=baseline_rate,
            relative=relative,
            alpha=alpha,
            power=power,
            alternative="greater" if one_sided else "two-sided",
            arms=arms,
            units_per_arm=units_per_arm,
            daily_units=daily_units,
            sequential=sequential and not one_sided,
            correction=correction if not one_sided else "none",
            min_units_per_arm=min_units_per_arm if not one_sided else 0,
        )
    except AbllmError as exc:
        fail(exc)
    if as_json:
        print_json(dataclasses.asdict(result))
        return
    table = Table(title="abllm power", show_header=False)
    table.add_column("quantity", style="bold")
    table.add_column("value", justify="right")
    for name, value in _rows(result, solved_for_n=units_per_arm is None):
        table.add_row(name, value)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``power`` command."""
    app.command("power")(power_cmd)
