"""Always-valid inference: normal-mixture confidence sequences and their p-values.

The peeking problem (seed 000: "Day 3: p=0.042 … Day 4: p=0.067") is solved, not warned about:
these p-values and intervals hold *simultaneously at every look*, so a dashboard may be
refreshed every minute and a decision taken the first time ``p ≤ alpha`` without inflating the
false-positive rate.

Method. Treat the standardised difference as a running sum ``S = √N·Z`` in intrinsic time
``V = N`` (N = units in both arms, Z = estimate / standard error). The normal-mixture
supermartingales of Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Ann. Statist. 49(2) — the same statistic as the mixture
SPRT of Johari, Koomen, Pekelis & Walsh (2017/2022), "Always valid inference" — are

* two-sided: ``log M = ½·log(ρ/(V+ρ)) + S²/(2(V+ρ))``
* one-sided: ``log M = ½·log(4ρ/(V+ρ)) + S²/(2(V+ρ)) + log Φ(S/√(V+ρ))``

and by Ville's inequality ``P(∃t: M_t ≥ 1/α) ≤ α``. The always-valid p-value is
``min(1, 1/M)``; the confidence sequence is the set of effects whose ``M`` stays below
``1/α``. Because the variance is estimated, validity is asymptotic (Waudby-Smith, Arbour,
Sinha, Kennedy & Ramdas 2023, "Time-uniform central limit theory and asymptotic confidence
sequences", eq. 9 — GrowthBook's sequential engine uses the same two-sided form).

``ρ`` only tunes *where* the sequence is tightest (at ``V = tuning_n``); any ρ is valid:
``ρ = tuning_n / (2 log(1/a) + log(1 + 2 log(1/a)))`` with ``a = α`` (two-sided) or ``2α``
(one-sided), Howard et al. (2021), eq. (3.11) and §3.5.

The p-value is valid at every look as computed; the running minimum over looks (and the
running intersection of intervals) is also valid and monotone, and is the caller's choice.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from abllm.stats._types import Alternative, FloatArray, Value, arr

_NEWTON_STEPS = 12


def mixture_rho(tuning_n: float, alpha: float, *, one_sided: bool) -> float:
    """Mixing scale ρ that makes the boundary tightest at ``tuning_n`` units."""
    a = 2.0 * alpha if one_sided else alpha
    log_inv = math.log(1.0 / a)
    return tuning_n / (2.0 * log_inv + math.log(1.0 + 2.0 * log_inv))


def sequential_p_value(
    z: Value, n_total: Value, *, alpha: float, tuning_n: float, alternative: Alternative
) -> FloatArray:
    """Always-valid p-value ``min(1, 1/M)`` for a z statistic observed on ``n_total`` units.

    ``alpha`` only enters through the tuning of ρ; the p-value is valid for any level.
    """
    zz, n = arr(z), arr(n_total)
    one_sided = alternative != "two-sided"
    rho = mixture_rho(tuning_n, alpha, one_sided=one_sided)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s2_term = n * zz * zz / (2.0 * (n + rho))
        if not one_sided:
            log_m = 0.5 * np.log(rho / (n + rho)) + s2_term
        else:
            signed = zz if alternative == "greater" else -zz
            x = signed * np.sqrt(n / (n + rho))
            log_m = 0.5 * np.log(4.0 * rho / (n + rho)) + s2_term + special.log_ndtr(x)
        return np.asarray(np.minimum(1.0, np.exp(-log_m)), dtype=np.float64)


def sequential_multiplier(
    n_total: Value, *, alpha: float, tuning_n: float, alternative: Alternative
) -> FloatArray:
    """Multiplier ``q`` of the standard error so that ``estimate ± q·se`` is the sequence.

    Two-sided: the ``1 − α`` confidence sequence. One-sided: both ends are one-sided ``1 − α``
    bounds (so together a ``1 − 2α`` sequence) and the relevant end is exactly the boundary of
    the one-sided test — the same convention as the fixed-horizon intervals. ``q`` grows like
    √(log N) where a fixed-horizon z stays at 1.96: the price of being valid at every look.
    """
    n = arr(n_total)
    log_inv = math.log(1.0 / alpha)
    if alternative == "two-sided":
        rho = mixture_rho(tuning_n, alpha, one_sided=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            q: FloatArray = np.sqrt((n + rho) / n * (np.log1p(n / rho) + 2.0 * log_inv))
        return q
    rho = mixture_rho(tuning_n, alpha, one_sided=True)
    # Solve g(x) = x²/2 + log Φ(x) = c for x = S/√(V+ρ); g is increasing and convex, so
    # Newton from a point right of the root converges monotonically.
    with np.errstate(divide="ignore", invalid="ignore"):
        c = log_inv - 0.5 * np.log(4.0 * rho / (n + rho))
        x = np.sqrt(2.0 * (c + math.log(2.0)))  # g(x) ≥ c here since log Φ(x) ≥ −log 2
        for _ in range(_NEWTON_STEPS):
            g = 0.5 * x * x + special.log_ndtr(x) - c
            slope = x + np.exp(-0.5 * x * x - 0.5 * math.log(2.0 * math.pi) - special.log_ndtr(x))
            x = x - g / slope
        return np.asarray(x * np.sqrt((n + rho) / n), dtype=np.float64)
