"""Reference profiles and drift scores: known answers on small and synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.distribution import (
    Thresholds,
    bin_counts,
    bin_counts_matrix,
    bin_encoded_categories,
    bin_ranges,
    categorical_profile,
    compare,
    encoded_category_bins,
    jensen_shannon_distance,
    numeric_profile,
    score_profile,
    wasserstein_distance,
)
from aimesh.core.errors import FailedPrecondition


def _normal(n: int, *, loc: float = 0.0, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, 1.0, n)


def test_numeric_profile_has_quantile_edges_shares_and_missing_fraction() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 5.0, 6.0, 7.0, 8.0, np.nan])
    profile = numeric_profile("v:x", values, bins=4)
    assert profile.kind == signature_pb2.INPUT_KIND_NUMERIC and profile.feature == "v:x"
    assert list(profile.bin_edges) == pytest.approx([1.0, 2.75, 4.5, 6.25, 8.0])
    assert list(profile.fractions) == pytest.approx([0.25, 0.25, 0.25, 0.25])
    assert profile.count == 8 and profile.missing_fraction == pytest.approx(0.2)


def test_tied_edges_are_deduplicated_and_a_constant_has_one_bin() -> None:
    tied = numeric_profile("v:x", np.array([0.0] * 8 + [1.0, 2.0]), bins=10)
    assert list(tied.bin_edges) == sorted(set(tied.bin_edges)) and len(tied.fractions) == len(tied.bin_edges) - 1
    assert sum(tied.fractions) == pytest.approx(1.0) and tied.fractions[0] == pytest.approx(0.8)
    constant = numeric_profile("v:x", np.full(5, 3.0))
    assert list(constant.bin_edges) == [3.0, 3.0] and list(constant.fractions) == [1.0]
    assert compare(constant, bin_counts(constant, np.full(4, 9.0))).psi == pytest.approx(0.0)
    empty = numeric_profile("v:x", np.array([np.nan, np.nan]))
    assert empty.count == 0 and empty.missing_fraction == 1.0
    with pytest.raises(FailedPrecondition, match="no bins"):
        bin_counts(empty, np.array([1.0]))


def test_numeric_bins_are_open_outside_and_exclude_nan() -> None:
    profile = numeric_profile("v:x", np.array([0.0, 1.0, 2.0, 3.0, 4.0]), bins=2)  # edges 0, 2, 4
    counts = bin_counts(profile, np.array([-100.0, 1.9, 2.0, 4.0, 100.0, np.nan, -np.inf, np.inf]))
    assert counts.tolist() == [3, 4]


def test_categorical_profile_keeps_the_top_values_then_other() -> None:
    values = ["b", "a", "b", "c", None, "a", "b", "d"]
    profile = categorical_profile("v:c", values, top=2)
    assert profile.kind == signature_pb2.INPUT_KIND_CATEGORICAL
    assert list(profile.categories) == ["b", "a"]
    assert list(profile.fractions) == pytest.approx([3 / 7, 2 / 7, 2 / 7])
    assert profile.count == 7 and profile.missing_fraction == pytest.approx(1 / 8)
    assert bin_counts(profile, ["a", "zzz", None, "b", "b"]).tolist() == [2, 1, 1]
    assert list(categorical_profile("v:c", ["x", "y"], top=5).fractions) == [0.5, 0.5, 0.0]


def test_identical_distributions_score_zero() -> None:
    reference = _normal(20_000)
    profile = numeric_profile("v:x", reference)
    scores = compare(profile, bin_counts(profile, reference), Thresholds(wasserstein_stddevs=0.1))
    assert scores.psi == pytest.approx(0.0, abs=1e-12)
    assert scores.js_distance == pytest.approx(0.0, abs=1e-6)
    assert scores.wasserstein == pytest.approx(0.0, abs=1e-12)
    assert not scores.drifted and scores.sample_count == 20_000


def test_a_fresh_sample_of_the_same_distribution_is_not_drifted() -> None:
    profile = numeric_profile("v:x", _normal(20_000))
    scores = compare(profile, bin_counts(profile, _normal(5_000, seed=11)), Thresholds(wasserstein_stddevs=0.1))
    assert scores.psi < 0.02 and scores.js_distance < 0.05 and not scores.drifted


def test_a_shift_of_one_stddev_is_flagged_by_every_metric() -> None:
    profile = numeric_profile("v:x", _normal(20_000))
    counts = bin_counts(profile, _normal(5_000, loc=1.0, seed=11))
    assert compare(profile, counts, Thresholds(psi=0.2, js_distance=0, wasserstein_stddevs=0)).drifted
    assert compare(profile, counts, Thresholds(psi=0, js_distance=0.1, wasserstein_stddevs=0)).drifted
    scores = compare(profile, counts, Thresholds(psi=0, js_distance=0, wasserstein_stddevs=0.5))
    assert scores.drifted and [name for name, _, _ in scores.crossed] == ["wasserstein_stddevs"]
    assert scores.crossed[0][1] == pytest.approx(scores.wasserstein / scores.reference_stddev)
    # binned, with the outer bins at their inner edge, the distance and stddev both shrink: about 0.7
    assert 0.6 < scores.wasserstein < 1.0 and 0.6 < scores.wasserstein / scores.reference_stddev < 1.2
    assert not compare(profile, counts, Thresholds(psi=0, js_distance=0, wasserstein_stddevs=0)).drifted


def test_wasserstein_is_in_the_feature_units() -> None:
    profile = numeric_profile("v:x", _normal(20_000) * 100.0)
    scores = compare(profile, bin_counts(profile, _normal(5_000, loc=1.0, seed=11) * 100.0))
    assert 60.0 < scores.wasserstein < 100.0 and 60.0 < scores.reference_stddev < 100.0


def test_wasserstein_of_a_point_mass_moved_between_bins_is_the_gap() -> None:
    positions = np.array([0.0, 1.0, 3.0])
    assert wasserstein_distance(positions, np.array([1.0, 0, 0]), np.array([0, 0, 1.0])) == pytest.approx(3.0)
    assert wasserstein_distance(positions, np.array([0.5, 0.5, 0]), np.array([0.5, 0, 0.5])) == pytest.approx(1.0)


def test_a_categorical_swap_is_flagged() -> None:
    profile = categorical_profile("v:c", ["a"] * 70 + ["b"] * 25 + ["c"] * 5)
    same = compare(profile, bin_counts(profile, ["a"] * 700 + ["b"] * 250 + ["c"] * 50))
    assert same.psi == pytest.approx(0.0) and same.wasserstein == 0.0 and not same.drifted
    swapped = compare(profile, bin_counts(profile, ["b"] * 70 + ["a"] * 25 + ["c"] * 5))
    assert swapped.drifted and swapped.psi > 0.2 and swapped.js_distance > 0.1 and swapped.wasserstein == 0.0


def test_jensen_shannon_is_symmetric_bounded_and_one_for_disjoint_shares() -> None:
    p, q = np.array([0.7, 0.2, 0.1, 0.0]), np.array([0.1, 0.1, 0.3, 0.5])
    assert jensen_shannon_distance(p, q) == pytest.approx(jensen_shannon_distance(q, p))
    assert 0.0 < jensen_shannon_distance(p, q) <= 1.0
    assert jensen_shannon_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_psi_of_an_empty_bin_is_large_but_finite() -> None:
    profile = numeric_profile("v:x", np.array([0.0, 1.0, 2.0, 3.0]), bins=2)
    scores = compare(profile, np.array([10, 0]))
    assert math.isfinite(scores.psi) and scores.psi > 2.0 and scores.drifted


def test_compare_refuses_mismatched_or_empty_counts() -> None:
    profile = numeric_profile("v:x", _normal(100), bins=4)
    with pytest.raises(FailedPrecondition, match="3 counts for the 4 bins"):
        compare(profile, np.array([1, 2, 3]))
    with pytest.raises(FailedPrecondition, match="no sample"):
        compare(profile, np.zeros(4, dtype=np.int64))


def test_the_matrix_path_matches_column_by_column_counts() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(2_000, 4)) * [1.0, 10.0, 0.1, 1.0]
    reference[:, 3] = np.round(reference[:, 3])  # ties: fewer bins than the others
    profiles = [numeric_profile(f"v:{j}", reference[:, j]) for j in range(4)]
    live = rng.normal(size=(3_001, 4)) * [1.0, 10.0, 0.1, 1.0] + 0.3
    live[::7, 1] = np.nan
    live[5, 2] = np.inf
    result = bin_counts_matrix(profiles, live)
    for j, profile in enumerate(profiles):
        expected = bin_counts(profile, live[:, j])
        assert result.counts[j, : expected.size].tolist() == expected.tolist()
        assert result.counts[j, expected.size :].sum() == 0
        assert int(result.missing[j]) == int(np.isnan(live[:, j]).sum())
    with pytest.raises(FailedPrecondition, match="categorical"):
        bin_counts_matrix([categorical_profile("v:c", ["a"])], np.zeros((1, 1)))


def test_encoded_categories_are_decoded_through_the_vocabulary() -> None:
    profile = categorical_profile("v:c", ["a", "a", "b", "c"], top=2)  # categories a, b; other
    table = encoded_category_bins(profile, ["b", "z", "a"])  # fed as 1, 2, 3
    assert table.tolist() == [-1, 1, 2, 0]
    counts, missing = bin_encoded_categories(profile, table, np.array([3, 3, 1, 2, 0, 9, np.nan, 1.5]))
    assert counts.tolist() == [2, 1, 1] and missing == 4


def test_score_profile_and_ranges() -> None:
    score = training_pb2.ScoreProfile(bin_edges=[0.0, 0.5, 1.0], fractions=[0.5, 0.5], count=10)
    profile = score_profile(score)
    assert profile.feature == "" and profile.kind == signature_pb2.INPUT_KIND_UNSPECIFIED
    assert bin_ranges(profile) == [(-math.inf, 0.5), (0.5, math.inf)]
    # (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5)
    expected = 0.25 * math.log(1.5) + 0.25 * math.log(2.0)
    assert compare(profile, bin_counts(profile, np.array([0.1, 0.2, 0.3, 0.9]))).psi == pytest.approx(expected)
