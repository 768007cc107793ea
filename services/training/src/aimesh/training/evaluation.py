"""Evaluation metrics over numpy arrays: rank-based ROC AUC, precision/recall at a threshold, score profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition

PROFILE_BINS = 10


def roc_auc(labels: NDArray[np.floating[Any]], scores: NDArray[np.floating[Any]]) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic; tied scores get their average rank.

    Raises ``FailedPrecondition`` when ``labels`` holds only one class (AUC undefined).
    """
    y = np.asarray(labels, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise FailedPrecondition(f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_ranks = ends - (counts - 1) / 2.0
    ranks = average_ranks[inverse]
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass(frozen=True)
class ThresholdMetrics:
    """Precision and recall when scores ``>= threshold`` are flagged."""

    threshold: float
    precision: float
    recall: float
    flagged: int


def precision_recall(
    labels: NDArray[np.floating[Any]], scores: NDArray[np.floating[Any]], threshold: float
) -> ThresholdMetrics:
    """Precision (0 when nothing is flagged) and recall (0 when there are no positives) at ``threshold``."""
    y = np.asarray(labels, dtype=bool).ravel()
    flagged = np.asarray(scores).ravel() >= threshold
    true_pos = int(np.sum(flagged & y))
    n_flagged = int(flagged.sum())
    n_pos = int(y.sum())
    return ThresholdMetrics(
        threshold=threshold,
        precision=true_pos / n_flagged if n_flagged else 0.0,
        recall=true_pos / n_pos if n_pos else 0.0,
        flagged=n_flagged,
    )


def score_profile(
    scores: NDArray[np.floating[Any]], bins: int = PROFILE_BINS, *, low: float = 0.0, high: float = 1.0
) -> training_pb2.ScoreProfile:
    """Equal-width histogram of scores over ``[low, high]`` (probabilities: [0, 1]), the drift reference;
    fractions sum to 1. Raises ``FailedPrecondition`` for an empty score set.
    """
    if high <= low:
        high = low + 1.0
    s = np.clip(np.asarray(scores, dtype=np.float64).ravel(), low, high)
    if s.size == 0:
        raise FailedPrecondition("a score profile needs at least one score")
    counts, edges = np.histogram(s, bins=bins, range=(low, high))
    return training_pb2.ScoreProfile(
        bin_edges=[float(e) for e in edges], fractions=[float(c) / s.size for c in counts], count=int(s.size)
    )


def regression_metrics(targets: NDArray[np.floating[Any]], predictions: NDArray[np.floating[Any]]) -> dict[str, float]:
    """RMSE, MAE and R² (1 - SSE / SST; 0 when the targets are constant) of ``predictions``."""
    y = np.asarray(targets, dtype=np.float64).ravel()
    p = np.asarray(predictions, dtype=np.float64).ravel()
    errors = p - y
    total = float(np.sum((y - y.mean()) ** 2)) if y.size else 0.0
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))) if y.size else 0.0,
        "mae": float(np.mean(np.abs(errors))) if y.size else 0.0,
        "r2": 1.0 - float(np.sum(errors**2)) / total if total > 0 else 0.0,
    }
