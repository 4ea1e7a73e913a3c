"""Managed API keys on every state backend: stored hashed, listed, revoked, cached."""

from __future__ import annotations

import pytest

from abllm.errors import Conflict, NotFound, ValidationError
from abllm.state import StateStore
from abllm.state.keycache import KeyCache
from abllm.state.keys import create_key, hash_key, keys_for, parse_id, revoke_key


def test_create_list_revoke(store: StateStore) -> None:
    keys = keys_for(store)
    record, key = create_key(keys, "admin", "ops laptop")
    assert key.startswith("abllm_ak_") and parse_id(key) == record.id
    assert record.prefix == key[: len("abllm_ak_") + 8]
    sdk, sdk_key = create_key(keys, "sdk", "web")
    assert sdk_key.startswith("abllm_sk_")
    rows = keys.all()
    assert [r.name for r in rows] == ["ops laptop", "web"]
    # Only the hash is stored, never the key.
    assert rows[0].key_hash == hash_key(key) and key not in repr(rows)
    assert revoke_key(keys, "web").id == sdk.id
    assert [r.revoked_at is not None for r in keys.all()] == [False, True]
    with pytest.raises(NotFound, match="keys list"):
        revoke_key(keys, "web")  # already revoked
    assert revoke_key(keys, record.prefix).name == "ops laptop"


def test_names_unique_and_checked(store: StateStore) -> None:
    keys = keys_for(store)
    create_key(keys, "sdk", "ci")
    with pytest.raises(Conflict, match="'ci' exists"):
        create_key(keys, "admin", "ci")
    with pytest.raises(ValidationError, match="scope 'root'"):
        create_key(keys, "root", "x")
    with pytest.raises(ValidationError, match="name"):
        create_key(keys, "sdk", "")


def test_cache_answers_from_a_snapshot(store: StateStore) -> None:
    keys = keys_for(store)
    record, key = create_key(keys, "sdk", "svc")
    cache = KeyCache(keys, ttl_s=60)
    assert cache.any()
    caller = cache.caller(key)
    assert caller is not None and caller.scope == "sdk" and caller.name == record.label
    assert cache.caller(key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # wrong secret
    assert cache.caller("abllm_sk_zz") is None and cache.caller("") is None
    assert cache.by_name(record.label) is not None
    revoke_key(keys, "svc")
    assert cache.caller(key) is not None  # until the snapshot is refreshed (ttl_s)
    cache.refresh()
    assert cache.caller(key) is None and not cache.any()
    assert cache.by_name(record.label) is None
