"""Leases on every state backend: one holder at a time, renewal, expiry hand-over, release."""

from __future__ import annotations

import time

import pytest

from abllm.errors import ValidationError
from abllm.state import StateStore
from abllm.state.lease import leases_for


def test_one_holder_renewal_and_release(store: StateStore) -> None:
    leases = leases_for(store)
    assert leases.holder("controller:exp") is None
    assert leases.acquire("controller:exp", "a", ttl_s=30)
    assert not leases.acquire("controller:exp", "b", ttl_s=30)
    assert leases.acquire("controller:exp", "a", ttl_s=30)  # renewal by the holder
    info = leases.holder("controller:exp")
    assert info is not None and info.holder == "a"
    assert leases.acquire("controller:other", "b", ttl_s=30)  # leases are per name
    leases.release("controller:exp", "b")  # not b's: no effect
    assert not leases.acquire("controller:exp", "b", ttl_s=30)
    leases.release("controller:exp", "a")
    assert leases.holder("controller:exp") is None
    assert leases.acquire("controller:exp", "b", ttl_s=30)


def test_an_expired_lease_moves_to_the_next_process(store: StateStore) -> None:
    leases = leases_for(store)
    assert leases.acquire("controller:exp", "dead", ttl_s=0.3)
    assert not leases.acquire("controller:exp", "alive", ttl_s=5)
    time.sleep(0.5)  # the holder stopped renewing
    assert leases.holder("controller:exp") is None
    assert leases.acquire("controller:exp", "alive", ttl_s=5)
    assert not leases.acquire("controller:exp", "dead", ttl_s=0.3)
    info = leases.holder("controller:exp")
    assert info is not None and info.holder == "alive"


def test_bad_arguments_are_refused(store: StateStore) -> None:
    leases = leases_for(store)
    with pytest.raises(ValidationError, match="ttl_s"):
        leases.acquire("x", "a", ttl_s=0)
    with pytest.raises(ValidationError, match="name and a holder"):
        leases.acquire("", "a", ttl_s=1)
