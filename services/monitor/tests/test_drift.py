"""PSI against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from aimesh.core.errors import FailedPrecondition
from aimesh.monitor.drift import bin_counts, open_ended_ranges, psi

EDGES = (0.0, 0.5, 1.0)


def test_psi_matches_hand_computation() -> None:
    counts = bin_counts(EDGES, [0.1, 0.2, 0.3, 0.9])
    assert counts == [3, 1]
    result = psi(EDGES, (0.5, 0.5), counts)
    # (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5)
    assert result.psi == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2.0), abs=1e-12)
    assert result.psi == pytest.approx(0.274653, abs=1e-6)
    assert [b.current_fraction for b in result.bins] == [0.75, 0.25]
    assert result.sample_count == 4


def test_identical_distribution_has_zero_psi() -> None:
    assert psi(EDGES, (0.5, 0.5), [10, 10]).psi == pytest.approx(0.0)


def test_empty_bin_uses_epsilon() -> None:
    result = psi(EDGES, (0.5, 0.5), [4, 0], epsilon=1e-4)
    expected = 0.5 * math.log(2.0) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert result.psi == pytest.approx(expected, rel=1e-12)
    assert result.psi == pytest.approx(4.604319, abs=1e-6)


def test_outer_bins_are_open_ended() -> None:
    assert open_ended_ranges(EDGES) == [(-math.inf, 0.5), (0.5, math.inf)]
    assert bin_counts(EDGES, [-3.0, 0.5, 7.0]) == [1, 2]


def test_no_scores_or_mismatched_profile_is_failed_precondition() -> None:
    with pytest.raises(FailedPrecondition, match="no scores"):
        psi(EDGES, (0.5, 0.5), [0, 0])
    with pytest.raises(FailedPrecondition, match="profile mismatch"):
        psi(EDGES, (1.0,), [1])
