"""Population Stability Index of live scores against a model version's reference profile (pure functions).

Bins come from the reference profile's edges. The first bin is open below and the last open above,
so every live score falls in a bin; each bin is ``[lower, upper)``. A bin share is floored at
``epsilon`` on both sides, so an empty bin adds a large but finite term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aimesh.core.errors import FailedPrecondition


@dataclass(frozen=True, slots=True)
class Bin:
    lower: float
    upper: float
    reference_fraction: float
    current_fraction: float


@dataclass(frozen=True, slots=True)
class Stability:
    """The PSI and its bins for one window."""

    psi: float
    bins: tuple[Bin, ...]
    sample_count: int


def open_ended_ranges(edges: Sequence[float]) -> list[tuple[float, float]]:
    """``[lower, upper)`` of each bin: the outer edges are replaced by -inf and +inf."""
    if len(edges) < 2:
        raise FailedPrecondition(f"a score profile needs at least 2 bin edges, got {len(edges)}")
    inner = list(edges[1:-1])
    return list(zip([-math.inf, *inner], [*inner, math.inf], strict=True))


def bin_counts(edges: Sequence[float], scores: Sequence[float]) -> list[int]:
    """How many ``scores`` fall in each open-ended bin of ``edges``."""
    ranges = open_ended_ranges(edges)
    counts = [0] * len(ranges)
    for score in scores:
        for i, (lower, upper) in enumerate(ranges):
            if lower <= score < upper:
                counts[i] += 1
                break
    return counts


def psi(
    edges: Sequence[float], reference: Sequence[float], counts: Sequence[int], *, epsilon: float = 1e-4
) -> Stability:
    """PSI = sum over bins of (cur - ref) * ln(cur / ref), shares floored at ``epsilon``.

    Raises ``FailedPrecondition`` when the profile is malformed or there are no current samples.
    """
    if len(edges) != len(reference) + 1 or len(counts) != len(reference):
        raise FailedPrecondition(
            f"profile mismatch: {len(edges)} edges, {len(reference)} reference shares, {len(counts)} counts"
        )
    total = sum(counts)
    if total == 0:
        raise FailedPrecondition("no scores in the window")
    bins: list[Bin] = []
    value = 0.0
    for (lower, upper), ref, count in zip(open_ended_ranges(edges), reference, counts, strict=True):
        cur = count / total
        r, c = max(ref, epsilon), max(cur, epsilon)
        value += (c - r) * math.log(c / r)
        bins.append(Bin(lower, upper, ref, cur))
    return Stability(value, tuple(bins), total)
