"""Ranking metrics of next-item models: HR@k and NDCG@k against sampled negatives and the full catalogue,
for the model and for the popularity baseline on the same rows and the same negatives.

Classes are vocabulary indexes ``1..V`` (0 is padding and never a candidate). For one evaluation row with
target ``t`` and candidate set ``C`` (``t`` excluded), the target's 0-based rank is
``#{c in C: s[c] > s[t]} + #{c in C: s[c] == s[t]} / 2`` (ties count half, so a model whose scores are all
equal ranks every target in the middle, not first). ``HR@k`` is the share of rows with rank ``< k``;
``NDCG@k`` the mean of ``1 / log2(rank + 2)`` over those rows (0 for the others): one relevant item, so
the ideal DCG is 1. Candidates: ``negatives`` items drawn uniformly without replacement (seeded) from the
vocabulary minus the target and the row's history, or every other vocabulary item (``_full``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from aimesh.core.errors import FailedPrecondition

TOP_K = 10
NEGATIVES = 100
EVAL_BATCH_ROWS = 1024
"""Rows scored at a time (bounds the ``[rows, V + 1]`` score matrix)."""

Scores = Callable[[NDArray[np.float32]], NDArray[np.float32]]
"""``scores(x [rows, width]) -> [rows, V + 1]``: higher is better (see ``trainers.base.RankScores``)."""


def target_ranks(
    scores: NDArray[np.float64], targets: NDArray[np.int64], candidates: NDArray[np.int64]
) -> NDArray[np.float64]:
    """0-based ranks of ``targets[i]`` among ``candidates[i]`` (``-1`` entries are no candidate) by ``scores[i]``.

    ``scores``: ``[rows, V + 1]``; ``candidates``: ``[rows, c]`` class indexes, none equal to the target.
    """
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets][:, None]
    present = candidates >= 0
    candidate_scores = np.take_along_axis(scores, np.where(present, candidates, 0), axis=1)
    greater = ((candidate_scores > target_scores) & present).sum(axis=1)
    ties = ((candidate_scores == target_scores) & present).sum(axis=1)
    ranks: NDArray[np.float64] = greater + ties / 2.0
    return ranks


def full_ranks(scores: NDArray[np.float64], targets: NDArray[np.int64]) -> NDArray[np.float64]:
    """0-based ranks of ``targets[i]`` among every other class ``1..V`` by ``scores[i]`` (``[rows, V + 1]``)."""
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets][:, None]
    catalogue = scores[:, 1:]
    greater = (catalogue > target_scores).sum(axis=1)
    ties = (catalogue == target_scores).sum(axis=1) - 1  # the target itself
    ranks: NDArray[np.float64] = greater + ties / 2.0
    return ranks


def hit_ratio(ranks: NDArray[np.float64], k: int = TOP_K) -> float:
    """Share of ranks below ``k`` (0.0 for no rows)."""
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg(ranks: NDArray[np.float64], k: int = TOP_K) -> float:
    """Mean of ``1 / log2(rank + 2)`` for ranks below ``k``, 0 otherwise (0.0 for no rows)."""
    if not len(ranks):
        return 0.0
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def sample_negatives(
    targets: NDArray[np.int64], histories: NDArray[np.int64], vocabulary: int, n: int, seed: int
) -> NDArray[np.int64]:
    """``[rows, n]`` distinct classes in ``1..vocabulary`` per row, none the row's target or in its history
    (``histories[i]``: class indexes, 0 = none); ``-1`` fills a row with fewer than ``n`` such classes."""
    rng = np.random.default_rng(seed)
    out = np.full((len(targets), n), -1, dtype=np.int64)
    for i, (target, history) in enumerate(zip(targets, histories, strict=True)):
        excluded = set(history[history > 0].tolist()) | {int(target)}
        available = vocabulary - len(excluded)
        if available <= 0:
            continue
        if available <= 2 * n:
            pool = np.setdiff1d(np.arange(1, vocabulary + 1), np.fromiter(excluded, dtype=np.int64))
            chosen = rng.permutation(pool)[:n]
        else:
            picked: list[int] = []
            seen = set(excluded)
            while len(picked) < n:
                for c in rng.integers(1, vocabulary + 1, size=2 * n).tolist():
                    if c not in seen:
                        seen.add(c)
                        picked.append(c)
                        if len(picked) == n:
                            break
            chosen = np.asarray(picked, dtype=np.int64)
        out[i, : len(chosen)] = chosen
    return out


@dataclass(frozen=True)
class RankingInputs:
    """What the evaluation ranks: eval rows, their targets and histories, and the training slice's labels."""

    x: NDArray[np.float32]
    """``[rows, width]`` encoded eval rows."""
    targets: NDArray[np.int64]
    """``[rows]`` target classes (0: a target outside the vocabulary, left out and counted)."""
    histories: NDArray[np.int64]
    """``[rows, length]`` the sequence input's classes of each row (0 = padding/unknown)."""
    train_targets: NDArray[np.int64]
    """The training slice's target classes: the popularity baseline's counts."""
    vocabulary: int


def popularity(train_targets: NDArray[np.int64], vocabulary: int) -> NDArray[np.float64]:
    """``[V + 1]`` label counts of the training slice per class; column 0 is ``-inf``."""
    counts = np.bincount(train_targets[(train_targets > 0) & (train_targets <= vocabulary)], minlength=vocabulary + 1)
    out = counts[: vocabulary + 1].astype(np.float64)
    out[0] = -np.inf
    return out


def next_item_metrics(model: Scores, data: RankingInputs, *, seed: int, negatives: int = NEGATIVES) -> dict[str, float]:
    """``hr@10``, ``ndcg@10`` (sampled negatives), ``hr@10_full``, ``ndcg@10_full`` of ``model`` and the same
    four with a ``popularity_`` prefix for the baseline, plus ``eval_ranked_rows`` and
    ``eval_unknown_targets``. ``FailedPrecondition`` when no eval row has a known target."""
    known = (data.targets > 0) & (data.targets <= data.vocabulary)
    if not known.any():
        raise FailedPrecondition(
            f"none of the {len(data.targets)} eval rows has a target in the item vocabulary (of the training slice)"
        )
    x, targets, histories = data.x[known], data.targets[known], data.histories[known]
    sampled = sample_negatives(targets, histories, data.vocabulary, negatives, seed)
    popular = popularity(data.train_targets, data.vocabulary)
    ranks: dict[str, list[NDArray[np.float64]]] = {k: [] for k in ("model", "model_full", "pop", "pop_full")}
    for begin in range(0, len(targets), EVAL_BATCH_ROWS):
        part = slice(begin, begin + EVAL_BATCH_ROWS)
        scores = np.asarray(model(x[part]), dtype=np.float64)
        baseline = np.broadcast_to(popular, scores.shape)
        ranks["model"].append(target_ranks(scores, targets[part], sampled[part]))
        ranks["model_full"].append(full_ranks(scores, targets[part]))
        ranks["pop"].append(target_ranks(baseline, targets[part], sampled[part]))
        ranks["pop_full"].append(full_ranks(baseline, targets[part]))
    r = {k: np.concatenate(v) for k, v in ranks.items()}
    return {
        f"hr@{TOP_K}": hit_ratio(r["model"]),
        f"ndcg@{TOP_K}": ndcg(r["model"]),
        f"hr@{TOP_K}_full": hit_ratio(r["model_full"]),
        f"ndcg@{TOP_K}_full": ndcg(r["model_full"]),
        f"popularity_hr@{TOP_K}": hit_ratio(r["pop"]),
        f"popularity_ndcg@{TOP_K}": ndcg(r["pop"]),
        f"popularity_hr@{TOP_K}_full": hit_ratio(r["pop_full"]),
        f"popularity_ndcg@{TOP_K}_full": ndcg(r["pop_full"]),
        "eval_ranked_rows": float(len(targets)),
        "eval_unknown_targets": float(len(data.targets) - len(targets)),
    }
