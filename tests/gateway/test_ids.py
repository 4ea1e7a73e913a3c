"""Pooled trace ids: right shape, no repeats, a fresh pool after fork."""

from __future__ import annotations

import os

from abllm.gateway import ids


def test_random_hex_shape_and_uniqueness_across_refills() -> None:
    values = [ids.random_hex() for _ in range(1000)]  # several 4 KiB pools
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in values)
    assert len(set(values)) == len(values)
    assert len(ids.random_hex(3000)) == 6000


def test_forked_child_does_not_reuse_the_parents_pool() -> None:
    ids.random_hex()  # the pool now holds unused bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, ids.random_hex().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert child != ids.random_hex()
