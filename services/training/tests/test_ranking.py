"""HR@10 / NDCG@10 by hand-computed cases, negative sampling, and the popularity baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aimesh.core.errors import FailedPrecondition
from aimesh.training.ranking import (
    RankingInputs,
    full_ranks,
    hit_ratio,
    ndcg,
    next_item_metrics,
    popularity,
    sample_negatives,
    target_ranks,
)

INF = float("inf")


def test_ranks_count_higher_candidates_and_half_the_ties() -> None:
    scores = np.asarray([[-INF, 0.9, 0.5, 0.5, 0.1], [-INF, 0.2, 0.3, 0.4, 0.5]])
    targets = np.asarray([2, 4])
    candidates = np.asarray([[1, 3, 4], [1, 2, -1]])  # -1: no candidate
    assert target_ranks(scores, targets, candidates).tolist() == [1.5, 0.0]
    assert full_ranks(scores, targets).tolist() == [1.5, 0.0]
    assert full_ranks(scores, np.asarray([4, 1])).tolist() == [3.0, 3.0]


def test_hit_ratio_and_ndcg_of_known_ranks() -> None:
    ranks = np.asarray([0.0, 1.5, 9.5, 10.0, 50.0])
    assert hit_ratio(ranks) == pytest.approx(3 / 5)
    assert ndcg(ranks) == pytest.approx((1.0 + 1 / math.log2(3.5) + 1 / math.log2(11.5)) / 5)
    assert hit_ratio(ranks, k=1) == pytest.approx(1 / 5) and ndcg(ranks, k=1) == pytest.approx(1 / 5)
    assert hit_ratio(np.asarray([])) == 0.0 and ndcg(np.asarray([])) == 0.0


def test_equal_scores_rank_a_target_in_the_middle_so_a_model_that_learned_nothing_misses() -> None:
    scores = np.zeros((3, 201))
    scores[:, 0] = -INF
    targets = np.asarray([5, 6, 7])
    negatives = sample_negatives(targets, np.zeros((3, 4), dtype=np.int64), 200, 100, seed=1)
    assert target_ranks(scores, targets, negatives).tolist() == [50.0, 50.0, 50.0]
    assert hit_ratio(full_ranks(scores, targets)) == 0.0


def test_negatives_are_distinct_seeded_and_never_the_target_or_the_history() -> None:
    targets = np.asarray([1, 2, 3])
    histories = np.asarray([[0, 4, 5], [0, 0, 0], [6, 7, 8]])
    first = sample_negatives(targets, histories, 1000, 100, seed=9)
    assert np.array_equal(first, sample_negatives(targets, histories, 1000, 100, seed=9))
    assert not np.array_equal(first, sample_negatives(targets, histories, 1000, 100, seed=10))
    for row, target, history in zip(first, targets, histories, strict=True):
        assert len(set(row.tolist())) == 100 and row.min() >= 1 and row.max() <= 1000
        assert target not in row and not set(history[history > 0].tolist()) & set(row.tolist())
    small = sample_negatives(np.asarray([1]), np.asarray([[2, 3]]), 6, 100, seed=1)
    assert sorted(small[0][small[0] >= 0].tolist()) == [4, 5, 6] and (small[0] == -1).sum() == 97


def test_popularity_counts_training_targets_and_never_ranks_padding() -> None:
    counts = popularity(np.asarray([1, 1, 3, 0, 9]), 4)
    assert counts.tolist() == [-INF, 2.0, 0.0, 1.0, 0.0]


def test_metrics_of_an_oracle_and_the_popularity_baseline_on_the_same_rows() -> None:
    vocabulary = 300
    rng = np.random.default_rng(0)
    targets = rng.integers(1, vocabulary + 1, size=50)
    targets[:5] = 0  # outside the vocabulary: left out and counted
    x = targets.astype(np.float32).reshape(-1, 1)  # the oracle reads the answer from x

    def oracle(batch: np.ndarray) -> np.ndarray:
        out = np.zeros((len(batch), vocabulary + 1), dtype=np.float32)
        out[:, 0] = -INF
        out[np.arange(len(batch)), batch[:, 0].astype(np.int64)] = 1.0
        return out

    train = np.asarray([1] * 50 + [2] * 30 + list(range(3, 40)))
    data = RankingInputs(
        x=x, targets=targets, histories=np.zeros((50, 3), dtype=np.int64), train_targets=train, vocabulary=vocabulary
    )
    metrics = next_item_metrics(oracle, data, seed=4)
    assert metrics["hr@10"] == 1.0 and metrics["ndcg@10"] == 1.0 and metrics["hr@10_full"] == 1.0
    assert metrics["eval_ranked_rows"] == 45 and metrics["eval_unknown_targets"] == 5
    known = targets[5:]
    pop = popularity(train, vocabulary)
    expected_full = hit_ratio(full_ranks(np.broadcast_to(pop, (45, vocabulary + 1)), known))
    assert metrics["popularity_hr@10_full"] == pytest.approx(expected_full)
    assert 0.0 <= metrics["popularity_hr@10"] < 1.0
    assert metrics == next_item_metrics(oracle, data, seed=4)  # seeded: the same negatives, the same numbers
    with pytest.raises(FailedPrecondition, match="none of the 2 eval rows"):
        next_item_metrics(
            oracle,
            RankingInputs(x[:2], np.zeros(2, dtype=np.int64), np.zeros((2, 3), dtype=np.int64), train, vocabulary),
            seed=1,
        )
