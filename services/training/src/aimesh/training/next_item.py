"""The parts of a run that only ``LABEL_KIND_NEXT_ITEM`` runs have: the item vocabulary, target classes,
popular items, and the ranking evaluation of a fitted model (see ``ranking``).

The sequence input is the feature service's first list-valued feature; its vocabulary is every item of
the training slice's sequences and targets, most frequent first (``infer_inputs``), and a target is its
vocabulary index + 1 (0: outside the vocabulary).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition
from aimesh.core.signature import InputEncoder, Scalar, infer_inputs
from aimesh.training import evaluation, model, ranking
from aimesh.training.trainers.base import Dataset, Fitted

POPULAR_ITEMS = 1000
"""Most popular items a signature records (the Recommend fallback)."""


def infer_item_inputs(
    names: Sequence[str], train_columns: Sequence[Sequence[Scalar]], train_targets: Sequence[str], *, max_len: int
) -> list[signature_pb2.SignatureInput]:
    """The run's inputs, the first list-valued feature a sequence input of ``max_len`` columns whose vocabulary
    also counts ``train_targets``; ``FailedPrecondition`` when no feature is list-valued."""
    sequence = next(
        (n for n, column in zip(names, train_columns, strict=True) if any(isinstance(v, tuple | list) for v in column)),
        None,
    )
    if sequence is None:
        raise FailedPrecondition(
            "a LABEL_KIND_NEXT_ITEM run needs a list feature (e.g. AGGREGATION_LAST_N of the item field) in the "
            f"feature service; none of {', '.join(names) or 'no features'} had a list value in the training slice"
        )
    return infer_inputs(names, train_columns, sequence_length=max_len, extra_items={sequence: train_targets})


def sequence_input(inputs: Sequence[signature_pb2.SignatureInput]) -> tuple[int, signature_pb2.SignatureInput]:
    """The position and spec of the first sequence input (``FailedPrecondition`` when there is none)."""
    for j, spec in enumerate(inputs):
        if spec.kind == signature_pb2.INPUT_KIND_SEQUENCE:
            return j, spec
    raise FailedPrecondition("the run has no sequence input")


def target_classes(targets: Sequence[str], vocabulary: Sequence[str]) -> NDArray[np.float32]:
    """``vocabulary.index(t) + 1`` per target as FP32, 0 for a target outside the vocabulary."""
    index = {v: k + 1 for k, v in enumerate(vocabulary)}
    return np.asarray([index.get(t, 0) for t in targets], dtype=np.float32)


def popular_items(train_targets: Sequence[str], limit: int = POPULAR_ITEMS) -> tuple[list[str], list[float]]:
    """The ``limit`` most frequent training targets (ties by value) and their shares of all targets."""
    counts = Counter(train_targets)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    total = max(len(train_targets), 1)
    return [v for v, _ in ranked], [c / total for _, c in ranked]


def refuse_sequences(inputs: Sequence[signature_pb2.SignatureInput], trainer: str) -> None:
    """``FailedPrecondition`` when a trainer that is not a next-item trainer would get a sequence input."""
    if names := [i.name for i in inputs if i.kind == signature_pb2.INPUT_KIND_SEQUENCE]:
        raise FailedPrecondition(
            f"trainer {trainer!r} takes no list features, but the feature service gives {', '.join(names)}; "
            "use a next-item trainer or a feature service without them"
        )


def evaluate(fitted: Fitted, data: Dataset, *, seed: int) -> tuple[dict[str, float], training_pb2.ScoreProfile]:
    """The ranking metrics (``ranking.next_item_metrics``) of ``fitted`` on the eval slice, plus
    ``vocabulary_size``, and the drift reference: the profile of each eval row's top score (scored
    ``ranking.EVAL_BATCH_ROWS`` rows at a time, so memory stays ``O(batch x vocabulary)``)."""
    if fitted.rank_scores is None:
        raise FailedPrecondition("the trainer returned no rank scores for a LABEL_KIND_NEXT_ITEM run")
    j, spec = sequence_input(data.inputs)
    span = InputEncoder(data.inputs).spans[j]
    inputs = ranking.RankingInputs(
        x=data.x_eval,
        targets=data.y_eval.astype(np.int64),
        histories=data.x_eval[:, span].round().astype(np.int64),
        train_targets=data.y_train.astype(np.int64),
        vocabulary=len(spec.vocabulary),
    )
    metrics = ranking.next_item_metrics(fitted.rank_scores, inputs, seed=seed)
    k = int(fitted.outputs[0].shape[0]) if fitted.outputs and fitted.outputs[0].shape else 1
    best = [
        model.predict_outputs(fitted.module, data.x_eval[begin : begin + ranking.EVAL_BATCH_ROWS])[:, k]
        for begin in range(0, len(data.x_eval), ranking.EVAL_BATCH_ROWS)
    ]
    profile = evaluation.score_profile(np.concatenate(best) if best else np.zeros(1))
    return metrics | {"vocabulary_size": float(len(spec.vocabulary))}, profile
