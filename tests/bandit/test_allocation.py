"""P(best) against numerical integration, the exploration floor, determinism, choose."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps

from abllm.bandit import (
    BetaPosterior,
    Posterior,
    StudentTPosterior,
    allocation,
    apply_floor,
    choose,
    probability_best,
)
from abllm.errors import ValidationError


def _exact_best(dists: list[sps.rv_continuous], lo: float, hi: float) -> list[float]:
    """P(X_i is the max) = ∫ f_i(x) Π_{j≠i} F_j(x) dx, by adaptive quadrature."""
    out = []
    for i, d in enumerate(dists):
        others = [o for j, o in enumerate(dists) if j != i]

        def integrand(
            x: float, d: sps.rv_continuous = d, others: list[sps.rv_continuous] = others
        ) -> float:
            return float(d.pdf(x) * np.prod([o.cdf(x) for o in others]))

        out.append(integrate.quad(integrand, lo, hi, limit=200)[0])
    return out


def test_two_betas_match_integration() -> None:
    a, b = BetaPosterior(31, 171), BetaPosterior(41, 161)
    exact = _exact_best([sps.beta(31, 171), sps.beta(41, 161)], 0, 1)
    draws = 200_000
    got = probability_best({"a": a, "b": b}, draws=draws, rng=11)
    tol = 4 * 0.5 / np.sqrt(draws)
    assert got["a"] == pytest.approx(exact[0], abs=tol)
    assert got["b"] == pytest.approx(exact[1], abs=tol)
    assert sum(got.values()) == pytest.approx(1.0)


def test_three_betas_match_integration() -> None:
    params = [(20, 180), (25, 175), (12, 88)]
    posts: dict[str, Posterior] = {f"v{i}": BetaPosterior(a, b) for i, (a, b) in enumerate(params)}
    exact = _exact_best([sps.beta(a, b) for a, b in params], 0, 1)
    got = probability_best(posts, draws=200_000, rng=5)
    np.testing.assert_allclose(list(got.values()), exact, atol=0.005)


def test_student_t_arms_match_integration_and_direction() -> None:
    params = [(4.0, 0.3, 6.0), (4.4, 0.2, 9.0), (3.9, 0.5, 3.0)]
    posts: dict[str, Posterior] = {
        f"v{i}": StudentTPosterior(loc, scale, df) for i, (loc, scale, df) in enumerate(params)
    }
    dists = [sps.t(df, loc, scale) for loc, scale, df in params]
    exact = _exact_best(dists, -np.inf, np.inf)
    got = probability_best(posts, draws=200_000, rng=9)
    np.testing.assert_allclose(list(got.values()), exact, atol=0.005)
    # Lower is better: P(min) = ∫ f_i Π (1 − F_j).
    lowest = probability_best(posts, draws=200_000, rng=9, higher_is_better=False)
    neg = [sps.t(df, -loc, scale) for loc, scale, df in params]
    np.testing.assert_allclose(list(lowest.values()), _exact_best(neg, -np.inf, np.inf), atol=0.005)


def test_deterministic_under_a_seed() -> None:
    posts: dict[str, Posterior] = {"a": BetaPosterior(3, 7), "b": BetaPosterior(4, 6)}
    assert allocation(posts, rng=123) == allocation(posts, rng=123)
    assert allocation(posts, rng=123) != allocation(posts, rng=124)
    gen1, gen2 = np.random.default_rng(8), np.random.default_rng(8)
    assert [choose(posts, gen1) for _ in range(20)] == [choose(posts, gen2) for _ in range(20)]


def test_allocation_keeps_the_floor_for_a_hopeless_arm() -> None:
    posts: dict[str, Posterior] = {
        "bad": BetaPosterior(1, 1000),
        "good": BetaPosterior(500, 500),
        "best": BetaPosterior(600, 400),
    }
    w = allocation(posts, floor=0.05, rng=0)
    assert w["bad"] == pytest.approx(0.05)
    assert w["good"] == pytest.approx(0.05)
    assert w["best"] == pytest.approx(0.90)
    assert sum(w.values()) == pytest.approx(1.0)


def test_floor_only_moves_mass_when_needed() -> None:
    assert apply_floor({"a": 0.6, "b": 0.4}, 0.05) == pytest.approx({"a": 0.6, "b": 0.4})
    w = apply_floor({"a": 0.0, "b": 0.02, "c": 0.49, "d": 0.49}, 0.1)
    assert w == pytest.approx({"a": 0.1, "b": 0.1, "c": 0.4, "d": 0.4})
    assert apply_floor({"a": 1.0, "b": 0.0}, 0.5) == pytest.approx({"a": 0.5, "b": 0.5})


@settings(max_examples=200, deadline=None)
@given(
    shares=st.lists(st.floats(0, 1), min_size=1, max_size=8),
    floor_frac=st.floats(0, 1),
)
def test_floor_property(shares: list[float], floor_frac: float) -> None:
    k = len(shares)
    floor = floor_frac / k
    w = apply_floor({str(i): s for i, s in enumerate(shares)}, floor)
    values = np.array(list(w.values()))
    assert values.sum() == pytest.approx(1.0)
    assert np.all(values >= floor - 1e-12)
    # Arms above the floor keep their order.
    p = np.array(shares)
    above = values > floor + 1e-9
    if above.sum() >= 2 and p.sum() > 0:
        order = np.argsort(p[above], kind="stable")
        assert np.all(np.diff(values[above][order]) >= -1e-12)


def test_choose_frequencies_follow_probability_best() -> None:
    posts: dict[str, Posterior] = {"a": BetaPosterior(31, 171), "b": BetaPosterior(41, 161)}
    gen = np.random.default_rng(2)
    picks = [choose(posts, gen) for _ in range(4000)]
    share_b = picks.count("b") / len(picks)
    exact_b = _exact_best([sps.beta(31, 171), sps.beta(41, 161)], 0, 1)[1]
    assert share_b == pytest.approx(exact_b, abs=4 * 0.5 / np.sqrt(4000))
    assert choose({"only": BetaPosterior(1, 1)}, 0) == "only"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: allocation({}), "at least one arm"),
        (lambda: choose({}), "at least one arm"),
        (lambda: probability_best({"a": BetaPosterior(1, 1)}, draws=0), "draws"),
        (lambda: allocation({str(i): BetaPosterior(1, 1) for i in range(3)}, floor=0.4), "floor"),
        (lambda: apply_floor({"a": 0.5}, -0.1), "floor"),
        (lambda: apply_floor({"a": float("nan")}, 0.0), "finite"),
    ],
)
def test_bad_input_raises_a_named_error(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        call()
