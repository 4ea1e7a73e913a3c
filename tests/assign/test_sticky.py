"""Sticky assignments: ramps and weight changes keep every unit's variant; anonymous → login."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from abllm.assign import Reason, RuntimeState, assign, assign_many
from abllm.assign.sticky import Assigned, MemoryStickyStore, StickyAssigner, StickyStore
from abllm.config import Experiment
from abllm.state.sticky import open_sticky
from abllm.telemetry import pseudonymous_id


def _experiment(**overrides: object) -> Experiment:
    data: dict[str, object] = {
        "id": "exp_sticky",
        "variants": [
            {"id": "control", "control": True, "llm": {"model": "m"}},
            {"id": "treatment", "llm": {"model": "m"}},
        ],
    }
    data.update(overrides)
    return Experiment.model_validate(data)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def sticky_store(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> Iterator[StickyStore]:
    kind = request.param
    if kind == "memory":
        store: StickyStore = MemoryStickyStore()
    elif kind == "sqlite":
        store = open_sticky(f"sqlite:///{tmp_path}/state.sqlite")
    elif kind == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        store = open_sticky(f"{pg_url}?schema={unique_name}")
    else:
        redis_url = request.getfixturevalue("redis_url")
        store = open_sticky(f"{redis_url}?prefix={unique_name}:")
    yield store
    store.close()
    if kind == "postgres":
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE')
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        keys = list(client.scan_iter(match=f"{unique_name}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_first_writer_wins(sticky_store: StickyStore) -> None:
    assert sticky_store.get_many("e", 1, ["user:a"]) == {}
    assert sticky_store.put_many("e", 1, {"user:a": "x", "user:b": "y"}) == {
        "user:a": "x",
        "user:b": "y",
    }
    assert sticky_store.put_many("e", 1, {"user:a": "z"}) == {"user:a": "x"}
    assert sticky_store.get_many("e", 2, ["user:a"]) == {}  # versions are separate
    many = {f"user:{i}": "x" if i % 2 else "y" for i in range(12_000)}  # over one chunk
    assert sticky_store.put_many("e", 3, many) == many


def test_weight_change_keeps_units_on_every_backend(sticky_store: StickyStore) -> None:
    exp = _experiment()
    sticky = StickyAssigner(sticky_store)
    units = [f"u{i}" for i in range(2000)]
    before = sticky.assign_many(exp, units, state=RuntimeState(traffic=30.0))
    moved = RuntimeState(traffic=60.0, weights={"control": 1, "treatment": 4})
    after = sticky.assign_many(exp, units, state=moved)
    was_in = before.variant >= 0
    assert was_in.sum() > 400
    np.testing.assert_array_equal(after.variant[was_in], before.variant[was_in])
    # the scalar path reads the same store and agrees
    for unit, a in list(zip(units, after, strict=True))[:50]:
        assert sticky.assign(exp, unit, state=moved).variant_id == a.variant_id


def test_ramp_and_reweight_100k_units_keep_their_variants() -> None:
    """5 → 25 → 50 → 100 % traffic, then 50/50 → 20/80: nobody who was in changes arm."""
    exp = _experiment()
    sticky = StickyAssigner(MemoryStickyStore())
    units = [f"user-{i}" for i in range(100_000)]
    previous = None
    for traffic in (5.0, 25.0, 50.0, 100.0):
        batch = sticky.assign_many(exp, units, state=RuntimeState(traffic=traffic))
        share = float((batch.variant >= 0).mean())
        assert abs(share - traffic / 100) < 0.01
        if previous is not None:
            was_in = previous >= 0
            np.testing.assert_array_equal(batch.variant[was_in], previous[was_in])  # only adds
        previous = batch.variant
    assert previous is not None
    reweighted = RuntimeState(traffic=100.0, weights={"control": 20, "treatment": 80})
    # without stickiness, a weight change moves units between arms ...
    pure = assign_many(exp, units, state=reweighted)
    assert (pure.variant != previous).sum() > 20_000
    # ... with it, every unit keeps its variant
    batch = sticky.assign_many(exp, units, state=reweighted)
    np.testing.assert_array_equal(batch.variant, previous)
    # new units follow the new weights
    newcomers = sticky.assign_many(exp, [f"new-{i}" for i in range(20_000)], state=reweighted)
    assert abs(float((newcomers.variant == 1).mean()) - 0.8) < 0.02


def test_kill_pause_and_winner_override_the_stored_variant() -> None:
    exp = _experiment()
    sticky = StickyAssigner(MemoryStickyStore())
    unit = next(
        u for u in (f"u{i}" for i in range(100)) if assign(exp, u).variant_id == "treatment"
    )
    assert sticky.assign(exp, unit).variant_id == "treatment"
    killed = sticky.assign(exp, unit, state=RuntimeState(killed=True))
    assert (killed.variant_id, killed.reason, killed.served_variant_id) == (
        None,
        Reason.KILLED,
        "control",
    )
    paused = sticky.assign(exp, unit, state=RuntimeState(paused_variants=frozenset({"treatment"})))
    assert (paused.variant_id, paused.reason, paused.served_variant_id) == (
        None,
        Reason.VARIANT_PAUSED,
        "control",
    )
    batch = sticky.assign_many(
        exp, [unit], state=RuntimeState(paused_variants=frozenset({"treatment"}))
    )
    assert next(iter(batch)).reason == Reason.VARIANT_PAUSED
    winner = sticky.assign(exp, unit, state=RuntimeState(winner="control", winner_percent=100))
    assert winner.variant_id == "control" and winner.reason == Reason.WINNER_ROLLOUT
    # a weight change that would move the unit does not
    moved = RuntimeState(weights={"control": 99, "treatment": 1})
    assert sticky.assign(exp, unit, state=moved).variant_id == "treatment"


def test_anonymous_session_keeps_its_variant_after_login() -> None:
    exp = _experiment(fallback_unit="session")
    sticky = StickyAssigner(MemoryStickyStore())
    for i in range(200):
        session = f"s{i}"
        anon = sticky.assign(exp, None, {"session": session})
        assert anon.variant_id == assign(exp, session).variant_id
        user = f"user{i}"
        logged_in = sticky.assign(exp, user, {"session": session})
        assert logged_in.variant_id == anon.variant_id  # inherited, whatever the user id hashes to
        # later visits without the session still get it
        assert sticky.assign(exp, user, {}).variant_id == anon.variant_id
    # the gateway may already have substituted the session for the missing unit id
    same = sticky.assign(exp, "s7", {"session": "s7"})
    assert same.variant_id == sticky.assign(exp, None, {"session": "s7"}).variant_id


def test_missing_unit_without_fallback_is_a_clear_error() -> None:
    from abllm.errors import ValidationError

    with pytest.raises(ValidationError, match="no user id"):
        StickyAssigner(MemoryStickyStore()).assign(_experiment(), None)


def test_selective_sticky_only_where_weights_can_move() -> None:
    from abllm.assign import RuntimeState, assign
    from abllm.assign.sticky import (
        MemoryStickyStore,
        SelectiveStickyAssigner,
        StickyAssigner,
        weights_can_move,
    )
    from abllm.config import Experiment

    arms = [
        {"id": "a", "control": True, "llm": {"model": "m"}},
        {"id": "b", "llm": {"model": "m"}},
    ]
    plain = Experiment.model_validate({"id": "plain", "variants": arms})
    staged = Experiment.model_validate(
        {
            "id": "staged",
            "variants": arms,
            "rollout": {
                "stages": [{"weights": {"a": 80, "b": 20}}, {"weights": {"a": 50, "b": 50}}]
            },
        }
    )
    assert not weights_can_move(plain) and weights_can_move(staged)
    store = MemoryStickyStore()
    chooser = SelectiveStickyAssigner(StickyAssigner(store))
    first = RuntimeState(weights={"a": 80, "b": 20})
    moved = RuntimeState(weights={"a": 0, "b": 1})
    units = [f"u{i}" for i in range(300)]
    before = {u: chooser.assign(staged, u, state=first).variant_id for u in units}
    after = {u: chooser.assign(staged, u, state=moved).variant_id for u in units}
    assert before == after  # sticky: the weight change moved nobody
    for u in units[:50]:  # plain experiment: the pure function, nothing stored
        assert chooser.assign(plain, u, state=moved) == assign(plain, u, state=moved)


class _BrokenStore(MemoryStickyStore):
    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        super().__init__()
        self.delay_s, self.fail = delay_s, fail

    def get_many(self, experiment_id: str, version: int, keys: Sequence[str]) -> dict[str, str]:
        time.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("store down")
        return super().get_many(experiment_id, version, keys)


@pytest.mark.parametrize(
    ("store", "why"),
    [(_BrokenStore(delay_s=0.5), "timeout"), (_BrokenStore(fail=True), "error")],
    ids=["frozen", "down"],
)
def test_assign_async_falls_back_to_the_hash_when_the_store_does_not_answer(
    store: _BrokenStore, why: str
) -> None:
    exp = _experiment()
    sticky = StickyAssigner(store, timeout_s=0.05)

    async def main() -> list[Assigned]:
        return list(await asyncio.gather(*(sticky.assign_async(exp, f"u{i}") for i in range(5))))

    started = time.monotonic()
    answers = asyncio.run(main())
    assert time.monotonic() - started < 0.4
    assert [a.fallback for a in answers] == [why] * 5
    assert [a.assignment for a in answers] == [assign(exp, f"u{i}") for i in range(5)]


def test_assign_async_stops_queueing_when_saturated() -> None:
    exp = _experiment()
    sticky = StickyAssigner(_BrokenStore(delay_s=0.3), timeout_s=0.01, max_pending=2, workers=1)

    async def main() -> list[Assigned]:
        return list(await asyncio.gather(*(sticky.assign_async(exp, f"u{i}") for i in range(6))))

    answers = asyncio.run(main())
    assert sorted(a.fallback or "" for a in answers) == ["saturated"] * 4 + ["timeout"] * 2


def test_assign_async_uses_the_store_when_it_answers() -> None:
    exp = _experiment()
    store = MemoryStickyStore()
    store.put_many(exp.id, exp.version, {"user:u1": "treatment", "user:u2": "control"})
    sticky = StickyAssigner(store)

    async def main() -> list[Assigned]:
        return [await sticky.assign_async(exp, u) for u in ("u1", "u2")]

    first, second = asyncio.run(main())
    assert first.fallback is None and first.assignment.variant_id == "treatment"
    assert second.assignment.variant_id == "control"


def test_pii_unit_ids_are_stored_as_pseudonyms() -> None:
    store = MemoryStickyStore()
    StickyAssigner(store).assign(_experiment(), "ann@example.com")
    (keys,) = [list(table) for table in store._data.values()]
    assert keys == ["user:" + pseudonymous_id("ann@example.com")]
    assert "ann" not in keys[0]
