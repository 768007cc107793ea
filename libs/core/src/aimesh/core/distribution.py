"""Reference profiles of model inputs and drift scores of binned live values against them (pure, numpy).

A profile (``training_pb2.FeatureProfile``) is the binned reference distribution of one input:

* numeric: fixed quantile bin edges (deduplicated, so heavy ties give fewer bins). Live values are
  counted in ``[lower, upper)`` bins whose outer bins are open: below the first edge counts in the first
  bin, at or above the last inner edge in the last bin. NaN is a missing value and is counted in no bin.
* categorical: the ``top`` most frequent values (ties by value), one bin each, then one bin for every
  other value. ``None`` is a missing value.

``compare`` scores a window's bin counts against a profile: PSI (shares floored at ``PSI_EPSILON``),
Jensen-Shannon distance (base 2, in ``[0, 1]``, symmetric) and, for numeric inputs, the Wasserstein-1
distance between the two binned distributions in the input's units. A bin sits at its midpoint; with
three or more bins the open outer bins sit at their inner edge (the reference's extremes are too noisy
to place them), as the ``DriftReport`` contract says. The Wasserstein threshold is in reference standard
deviations, estimated from the binned reference at the same bin positions. No p-values: at large counts
every difference is significant, so verdicts come from the size of the difference only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

import numpy as np
import numpy.typing as npt

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition

PSI_EPSILON = 1e-4
"""Bin shares are floored at this value in the PSI, so an empty bin adds a large but finite term."""

_MATRIX_CHUNK_CELLS = 1 << 20
"""How many matrix cells ``bin_counts_matrix`` works on at once (bounds its temporaries to a few MiB)."""

Floats = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When an input counts as drifted: any metric at or above its threshold; 0 leaves a metric unused."""

    psi: float = 0.2
    js_distance: float = 0.1
    wasserstein_stddevs: float = 0.0


@dataclass(frozen=True, slots=True)
class DriftScores:
    """How far a window's bin shares are from the reference's, and the verdict."""

    psi: float
    js_distance: float
    wasserstein: float
    """In the input's units; 0 for categorical inputs."""
    reference_stddev: float
    """Standard deviation of the binned reference (0 for categorical inputs)."""
    drifted: bool
    crossed: tuple[tuple[str, float, float], ...]
    """The metrics that reached their threshold, as (name, value, threshold): ``psi``, ``js_distance``,
    ``wasserstein_stddevs`` (the distance in reference stddevs); the verdict is whether any did."""
    reference_fractions: tuple[float, ...]
    current_fractions: tuple[float, ...]
    sample_count: int


class MatrixCounts(NamedTuple):
    """Bin counts of many numeric columns: ``counts[j, b]`` for column j's bin b (columns with fewer bins
    than the widest are padded with zeros) and ``missing[j]``, column j's NaN count."""

    counts: Counts
    missing: Counts


def numeric_profile(name: str, values: npt.ArrayLike, *, bins: int = 10) -> training_pb2.FeatureProfile:
    """The profile of a numeric input from its reference values (NaN = missing).

    Edges are the ``bins + 1`` quantiles of the present values, deduplicated; a constant input has one
    bin (edges ``[v, v]``). With no present value the profile has no bins and ``count`` 0, and
    ``bin_counts``/``compare`` refuse it.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    array = np.asarray(values, dtype=np.float64).ravel()
    present = array[~np.isnan(array)]
    profile = training_pb2.FeatureProfile(
        feature=name,
        kind=signature_pb2.INPUT_KIND_NUMERIC,
        count=int(present.size),
        missing_fraction=_missing_fraction(array.size, present.size),
    )
    if present.size == 0:
        return profile
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        edges = np.repeat(edges, 2)
    profile.bin_edges.extend(edges.tolist())
    profile.fractions.extend(_shares(bin_counts(profile, present)))
    return profile


def categorical_profile(name: str, values: Sequence[str | None], *, top: int = 20) -> training_pb2.FeatureProfile:
    """The profile of a categorical input: its ``top`` most frequent values (ties by value), then the
    bin of every other value (always present, possibly empty). ``None`` is a missing value."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    frequencies = Counter(value for value in values if value is not None)
    present = sum(frequencies.values())
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))[:top]
    categories = [value for value, _ in ranked]
    counts = [count for _, count in ranked]
    profile = training_pb2.FeatureProfile(
        feature=name,
        kind=signature_pb2.INPUT_KIND_CATEGORICAL,
        categories=categories,
        count=present,
        missing_fraction=_missing_fraction(len(values), present),
    )
    if present:
        profile.fractions.extend(_shares(np.asarray([*counts, present - sum(counts)], dtype=np.int64)))
    return profile


def bin_counts(profile: training_pb2.FeatureProfile, values: npt.ArrayLike | Sequence[str | None]) -> Counts:
    """How many ``values`` fall in each bin of ``profile`` (missing values in none).

    Numeric profiles take numbers (NaN = missing); categorical profiles take strings (``None`` =
    missing, any value not among the categories counts in the last bin).
    """
    if profile.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
        index = {value: i for i, value in enumerate(profile.categories)}
        other = len(profile.categories)
        labels = cast("Sequence[str | None]", values)
        indexes = [index.get(value, other) for value in labels if value is not None]
        return np.bincount(np.asarray(indexes, dtype=np.int64), minlength=other + 1).astype(np.int64)
    inner = _inner_edges(profile)
    array = np.asarray(values, dtype=np.float64).ravel()
    present = array[~np.isnan(array)]
    return np.bincount(np.searchsorted(inner, present, side="right"), minlength=inner.size + 1).astype(np.int64)


def bin_counts_matrix(profiles: Sequence[training_pb2.FeatureProfile], matrix: npt.ArrayLike) -> MatrixCounts:
    """Bin counts of every column of ``matrix`` (rows x len(profiles), NaN = missing) at once.

    Column j is binned with ``profiles[j]``, which must be numeric. Works on row chunks of about
    ``_MATRIX_CHUNK_CELLS`` cells, so memory beyond the input stays a few MiB whatever the row count.
    """
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(profiles):
        raise ValueError(f"a matrix of {len(profiles)} columns is needed, got shape {array.shape}")
    columns = len(profiles)
    inner = [_inner_edges(profile) for profile in profiles]
    widths = np.asarray([edges.size + 1 for edges in inner], dtype=np.int64)
    width = int(widths.max(initial=1))
    padded = np.full((columns, max(width - 1, 0)), np.inf)
    for j, edges in enumerate(inner):
        padded[j, : edges.size] = edges
    missing_bin = width
    offsets = np.arange(columns, dtype=np.int64) * (width + 1)
    totals = np.zeros(columns * (width + 1), dtype=np.int64)
    step = max(1, _MATRIX_CHUNK_CELLS // max(columns, 1))
    for start in range(0, array.shape[0], step):
        chunk = array[start : start + step]
        index = np.zeros(chunk.shape, dtype=np.int64)
        for e in range(padded.shape[1]):
            index += chunk >= padded[:, e]
        np.minimum(index, widths - 1, out=index)
        index[np.isnan(chunk)] = missing_bin
        index += offsets
        totals += np.bincount(index.ravel(), minlength=totals.size)
    table = totals.reshape(columns, width + 1)
    return MatrixCounts(counts=table[:, :width].copy(), missing=table[:, width].copy())


def score_profile(profile: training_pb2.ScoreProfile) -> training_pb2.FeatureProfile:
    """A version's score reference as a numeric profile (feature ``""``, kind unset), so the score is
    binned and compared like an input."""
    return training_pb2.FeatureProfile(bin_edges=profile.bin_edges, fractions=profile.fractions, count=profile.count)


def bin_ranges(profile: training_pb2.FeatureProfile) -> list[tuple[float, float]]:
    """``[lower, upper)`` of each numeric bin, the outer edges replaced by -inf and +inf."""
    inner = _inner_edges(profile).tolist()
    return list(zip([-math.inf, *inner], [*inner, math.inf], strict=True))


def encoded_category_bins(profile: training_pb2.FeatureProfile, vocabulary: Sequence[str]) -> Counts:
    """For a categorical input fed as vocabulary indexes (``vocabulary[i]`` as ``i + 1``, 0 = missing or
    unknown): ``table[index]`` is the profile bin of that encoded value, -1 for 0 (a missing value)."""
    index = {value: i for i, value in enumerate(profile.categories)}
    other = len(profile.categories)
    return np.asarray([-1, *(index.get(value, other) for value in vocabulary)], dtype=np.int64)


def bin_encoded_categories(
    profile: training_pb2.FeatureProfile, table: Counts, encoded: npt.ArrayLike
) -> tuple[Counts, int]:
    """Bin counts of encoded categorical values through ``table`` (``encoded_category_bins(profile, ...)``),
    and how many were missing (0, NaN, or not an index of the vocabulary)."""
    values = np.asarray(encoded, dtype=np.float64).ravel()
    valid = np.isfinite(values) & (values >= 0) & (values < table.size) & (values == np.floor(values))
    bins = np.full(values.size, -1, dtype=np.int64)
    bins[valid] = table[values[valid].astype(np.int64)]
    present = bins[bins >= 0]
    width = len(profile.categories) + 1
    return np.bincount(present, minlength=width).astype(np.int64), int(values.size - present.size)


def bin_positions(profile: training_pb2.FeatureProfile) -> Floats:
    """Where each numeric bin sits for the Wasserstein distance and the reference stddev: its midpoint,
    and with three or more bins the open outer bins at their inner edge."""
    edges = np.asarray(profile.bin_edges, dtype=np.float64)
    positions = (edges[:-1] + edges[1:]) / 2.0
    if positions.size >= 3:
        positions[0], positions[-1] = edges[1], edges[-2]
    return positions


def compare(
    profile: training_pb2.FeatureProfile,
    counts: npt.ArrayLike,
    thresholds: Thresholds = Thresholds(),
    *,
    epsilon: float = PSI_EPSILON,
) -> DriftScores:
    """Drift scores of a window's ``counts`` (one per bin of ``profile``) and the verdict (PSI shares
    floored at ``epsilon``).

    Raises ``FailedPrecondition`` when the profile has no bins, the counts do not match it, or the window
    has no sample.
    """
    reference = np.asarray(profile.fractions, dtype=np.float64)
    current_counts = np.asarray(counts, dtype=np.int64).ravel()
    if reference.size == 0:
        raise FailedPrecondition(f"the profile of {profile.feature!r} has no bins")
    if current_counts.size != reference.size:
        raise FailedPrecondition(f"{current_counts.size} counts for the {reference.size} bins of {profile.feature!r}")
    total = int(current_counts.sum())
    if total == 0:
        raise FailedPrecondition(f"no sample of {profile.feature!r} in the window")
    current = current_counts / total
    psi = population_stability(reference, current, epsilon=epsilon)
    js = jensen_shannon_distance(reference, current)
    wasserstein = stddev = 0.0
    if profile.kind != signature_pb2.INPUT_KIND_CATEGORICAL:
        positions = bin_positions(profile)
        wasserstein = wasserstein_distance(positions, reference, current)
        mean = float(np.dot(reference, positions))
        stddev = math.sqrt(max(float(np.dot(reference, (positions - mean) ** 2)), 0.0))
    crossed = tuple(
        (name, value, threshold)
        for name, value, threshold in (
            ("psi", psi, thresholds.psi),
            ("js_distance", js, thresholds.js_distance),
            ("wasserstein_stddevs", _in_stddevs(wasserstein, stddev), thresholds.wasserstein_stddevs),
        )
        if threshold > 0.0 and value >= threshold
    )
    return DriftScores(
        psi=psi,
        js_distance=js,
        wasserstein=wasserstein,
        reference_stddev=stddev,
        drifted=bool(crossed),
        crossed=crossed,
        reference_fractions=tuple(reference.tolist()),
        current_fractions=tuple(current.tolist()),
        sample_count=total,
    )


def population_stability(reference: Floats, current: Floats, *, epsilon: float = PSI_EPSILON) -> float:
    """PSI = sum over bins of (cur - ref) * ln(cur / ref), both shares floored at ``epsilon``."""
    r = np.maximum(reference, epsilon)
    c = np.maximum(current, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon_distance(reference: Floats, current: Floats) -> float:
    """sqrt of the Jensen-Shannon divergence in bits: symmetric, 0 for equal shares, 1 for disjoint ones."""
    middle = (reference + current) / 2.0
    divergence = 0.5 * _kullback_leibler_bits(reference, middle) + 0.5 * _kullback_leibler_bits(current, middle)
    return math.sqrt(min(max(divergence, 0.0), 1.0))


def wasserstein_distance(positions: Floats, reference: Floats, current: Floats) -> float:
    """Wasserstein-1 distance of two distributions on the same ascending ``positions``: the area between
    their cumulative distribution functions."""
    if positions.size < 2:
        return 0.0
    gaps = np.diff(positions)
    cumulative = np.cumsum(reference - current)[:-1]
    return float(np.sum(np.abs(cumulative) * gaps))


def _kullback_leibler_bits(p: Floats, q: Floats) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / q[mask])))


def _inner_edges(profile: training_pb2.FeatureProfile) -> Floats:
    if profile.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
        raise FailedPrecondition(f"{profile.feature!r} is categorical, not numeric")
    if len(profile.bin_edges) < 2:
        raise FailedPrecondition(f"the profile of {profile.feature!r} has no bins")
    return np.asarray(profile.bin_edges[1:-1], dtype=np.float64)


def _shares(counts: Counts) -> list[float]:
    total = int(counts.sum())
    return (counts / total).tolist() if total else []


def _missing_fraction(rows: int, present: int) -> float:
    return (rows - present) / rows if rows else 0.0


def _in_stddevs(distance: float, stddev: float) -> float:
    if stddev > 0.0:
        return distance / stddev
    return math.inf if distance > 0.0 else 0.0
