"""Rank-based AUC, precision/recall at a threshold and the score profile."""

from __future__ import annotations

import numpy as np
import pytest

from aimesh.core.errors import FailedPrecondition
from aimesh.training.evaluation import precision_recall, roc_auc, score_profile


def test_auc_of_a_known_case() -> None:
    # 4 positive/negative pairs; 3 ordered correctly -> 0.75
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)


def test_auc_counts_ties_as_half() -> None:
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    # one tie across classes (0.3 vs 0.3) out of 2x2 pairs: (3 + 0.5) / 4
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.3, 0.9])) == pytest.approx(0.875)


def test_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300), 2)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert roc_auc(y, s) == pytest.approx(pairwise)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(FailedPrecondition, match="both classes"):
        roc_auc(np.array([1, 1]), np.array([0.2, 0.9]))


def test_precision_recall_at_threshold() -> None:
    m = precision_recall(np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.8, 0.2, 0.1, 0.7]), 0.5)
    assert (m.precision, m.recall, m.flagged) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert precision_recall(np.array([1]), np.array([0.1]), 0.5).precision == 0.0


def test_score_profile_has_ten_equal_bins_summing_to_one() -> None:
    profile = score_profile(np.array([0.0, 0.05, 0.15, 0.95, 1.0]))
    assert list(profile.bin_edges) == pytest.approx([i / 10 for i in range(11)])
    assert sum(profile.fractions) == pytest.approx(1.0)
    assert list(profile.fractions) == pytest.approx([0.4, 0.2, 0, 0, 0, 0, 0, 0, 0, 0.4])
    assert profile.count == 5
