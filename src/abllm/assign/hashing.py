"""GrowthBook-compatible hashing and bucketing, byte for byte.

Source: GrowthBook SDK spec (``packages/sdk-js/src/util.ts``: ``hash``, ``getBucketRanges``,
``chooseVariation``, ``inNamespace``, ``getEqualWeights``), checked against the cross-SDK
conformance file ``cases.json``. FNV-1a 32-bit runs over UTF-16 code units, as JavaScript's
``charCodeAt`` does, so experiments migrated from GrowthBook keep every user's variant.

ASCII input (the common case: code units equal bytes) is hashed by ``fnv-hash-fast``'s C
implementation; other text by the pure-Python loop below. FNV-1a is a streaming hash, so the
vectorised path starts every unit from the state after the seed (:func:`fnv_prefix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from fnv_hash_fast import fnv1a_32 as _fnv1a_32_bytes

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
MASK32 = 0xFFFFFFFF

Range = tuple[float, float]


def _code_units(text: str) -> Sequence[int]:
    """UTF-16 code units of ``text`` (JavaScript's ``charCodeAt`` values)."""
    if text.isascii():
        return text.encode("ascii")
    data = text.encode("utf-16-le")
    return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]


def fnv_continue(state: int, text: str) -> int:
    """Continue an FNV-1a 32 hash from ``state`` over the UTF-16 code units of ``text``."""
    h = state
    for c in _code_units(text):
        h = ((h ^ c) * FNV_PRIME) & MASK32
    return h


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit hash of ``text`` over UTF-16 code units."""
    return fnv_continue(FNV_OFFSET, text)


@lru_cache(maxsize=4096)
def fnv_prefix(seed: str) -> int:
    """FNV state after hashing ``seed``: the shared prefix of every unit's hash input."""
    return fnv1a32(seed)


def hash_v2_from_prefix(prefix_state: int, value: str) -> float:
    """GrowthBook hash v2 given the FNV state after the seed: ``fnv(str(fnv(seed+value)))``."""
    h = prefix_state
    for c in _code_units(value):
        h = ((h ^ c) * FNV_PRIME) & MASK32
    h2 = FNV_OFFSET
    for c in str(h).encode("ascii"):
        h2 = ((h2 ^ c) * FNV_PRIME) & MASK32
    return (h2 % 10000) / 10000


def hash_v2(seed: str, value: str) -> float:
    """GrowthBook hash v2 of ``value`` under ``seed``, in [0, 1) with 4 decimals."""
    text = seed + value
    if text.isascii():
        h = _fnv1a_32_bytes(text.encode("ascii"))
        return (_fnv1a_32_bytes(str(h).encode("ascii")) % 10000) / 10000
    return hash_v2_from_prefix(fnv_prefix(seed), value)


def gb_hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook ``hash(seed, value, version)``: a float in [0, 1), or None for unknown versions.

    v1: ``(fnv(value + seed) % 1000) / 1000``;
    v2: ``(fnv(str(fnv(seed + value))) % 10000) / 10000``.
    """
    if version == 2:
        return hash_v2(seed, value)
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def get_equal_weights(num_variations: int) -> list[float]:
    """Equal weights for ``num_variations`` arms (empty when not positive)."""
    if num_variations <= 0:
        return []
    return [1.0 / num_variations] * num_variations


def get_bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[Range]:
    """GrowthBook bucket ranges: arm i gets ``[start_i, start_i + coverage * w_i)``.

    Each arm's range starts at its cumulative weight whatever the coverage, so raising coverage
    only extends ranges: a unit in the experiment stays in the same arm (ramp monotonicity).
    Invalid weights (wrong length or not summing to ~1) fall back to equal weights, as in the SDK.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    w = list(weights) if weights is not None else get_equal_weights(num_variations)
    if len(w) != num_variations:
        w = get_equal_weights(num_variations)
    total = sum(w)
    if total < 0.99 or total > 1.01:
        w = get_equal_weights(num_variations)
    ranges: list[Range] = []
    cumulative = 0.0
    for weight in w:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(n: float, ranges: Sequence[Range]) -> int:
    """Index of the range holding ``n`` (start inclusive, end exclusive), or -1."""
    for i, (start, end) in enumerate(ranges):
        if start <= n < end:
            return i
    return -1


def in_namespace(unit_id: str, namespace: tuple[str, float, float]) -> bool:
    """GrowthBook ``inNamespace``: ``start <= hash("__" + name, unit, v1) < end``."""
    name, start, end = namespace
    n = gb_hash("__" + name, unit_id, 1)
    return n is not None and start <= n < end
