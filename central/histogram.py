"""Fixed-bucket histograms of seconds (waits, service times) and hours, the only numpy user in central.

Buckets, by upper bound: every 10 s up to 1 h, every minute up to 8 h, every 10 minutes up to 24 h,
then one bucket for anything longer. A value is counted under the smallest upper bound >= it, so a
percentile read from merged histograms is the true nearest-rank figure rounded UP to its bucket:
at most 10 s high below an hour, 1 minute below 8 hours. Service-level thresholds in whole minutes
up to 480 fall on bucket bounds, so "called within N minutes" is exact.

Stored sparse as hex text (both databases hold TEXT alike): (uint16 bucket, uint32 count) pairs, so a
page merges thousands of day rows with one join and one bincount instead of a Python loop per bucket.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import numpy as np

UPPER: list[int] = ([*range(10, 3601, 10), *range(3660, 28801, 60), *range(29400, 86401, 600), 2 ** 31 - 1])
SIZE = len(UPPER)
_PAIR = np.dtype([("i", "<u2"), ("n", "<u4")])


def bucket(seconds: int) -> int:
    return bisect.bisect_left(UPPER, max(seconds, 0))


def encode(counts: dict[int, int]) -> str:
    pairs = np.array(sorted((i, n) for i, n in counts.items() if n), dtype=np.int64).reshape(-1, 2)
    out = np.empty(len(pairs), dtype=_PAIR)
    out["i"], out["n"] = pairs[:, 0], pairs[:, 1]
    return out.tobytes().hex()


def decode(encoded: str) -> dict[int, int]:
    pairs = np.frombuffer(bytes.fromhex(encoded), dtype=_PAIR)
    return {int(i): int(n) for i, n in zip(pairs["i"], pairs["n"], strict=True)}


def merge(encoded: Iterable[str], size: int = SIZE) -> list[int]:
    """The counts per bucket of all the histograms together."""
    pairs = np.frombuffer(bytes.fromhex("".join(encoded)), dtype=_PAIR)
    return [int(x) for x in np.bincount(pairs["i"], weights=pairs["n"], minlength=size)[:size].round()]


def percentile(counts: Sequence[int], p: int) -> int | None:
    """Nearest rank over the merged buckets: the upper bound of the bucket holding the p % rank."""
    total = sum(counts)
    if not total:
        return None
    running = 0
    for index, n in enumerate(counts):
        running += n
        if running * 100 >= p * total:
            return UPPER[index]
    return UPPER[-1]


def at_most(counts: Sequence[int], seconds: int) -> int:
    """How many values are <= seconds (exact when seconds is a bucket bound)."""
    return sum(counts[: bisect.bisect_right(UPPER, seconds)])
