"""``sequence_next_item``: the next element of a sequence input, from an LSTM over its element embeddings.

The model reads the run's first ``INPUT_KIND_SEQUENCE`` input (``length`` columns of vocabulary indexes
``i + 1``, oldest first, right-aligned, ``0`` = padding/unknown; other inputs are ignored): element
embeddings (index 0 is padding, a zero vector) -> one LSTM layer -> its last hidden state -> a linear layer
scoring every vocabulary index. Trained with cross-entropy on the row's target (``LABEL_KIND_NEXT_ITEM``:
its vocabulary index, rows whose target is unknown are skipped).

The exported module's ``forward(x [batch, width])`` takes the top-k inside the model and returns
``(items [batch, k], scores [batch, k])``: the ``k`` best vocabulary indexes as floats (never 0) best
first, and their softmax probabilities, descending; ``k = min(export_k, vocabulary size)``. ``logits``
is the full score matrix ``[batch, vocabulary + 1]`` (column 0 is ``-inf``) the evaluation ranks with.

Parameters: ``embedding_dim`` (64), ``hidden`` (128), ``epochs`` (10), ``batch_size`` (512), ``lr``
(Adam's learning rate, 0.003), ``max_len`` (columns of the sequence input, 20), ``export_k`` (100),
``seed`` (7). Runs on CUDA when available, else on the CPU (deterministic per seed there).
(No ``from __future__ import annotations`` here: TorchScript reads the annotations.)
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Tuple  # noqa: UP035 - TorchScript needs typing.Tuple for forward's return type

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.core.errors import FailedPrecondition
from aimesh.core.signature import InputEncoder
from aimesh.training.trainers.base import Dataset, Fitted, Progress, RankScores, number
from aimesh.training.trainers.tabular import device

SCORE_BATCH_ROWS = 2048
"""Rows scored per forward pass by ``Fitted.rank_scores`` (bounds the ``[rows, vocabulary]`` matrix)."""


class NextItemModel(nn.Module):
    """Embeddings + LSTM + linear scores over the vocabulary (see the module doc)."""

    pad_mask: torch.Tensor

    def __init__(self, vocabulary: int, *, start: int, length: int, embedding_dim: int, hidden: int, k: int) -> None:
        super().__init__()
        self.classes = vocabulary + 1
        self.start = start
        self.length = length
        self.k = k
        self.embedding = nn.Embedding(self.classes, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, self.classes)
        mask = torch.zeros(1, self.classes, dtype=torch.bool)
        mask[0, 0] = True
        self.register_buffer("pad_mask", mask)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, vocabulary + 1]`` scores of every index; column 0 (padding) is ``-inf``."""
        sequence = x[:, self.start : self.start + self.length].round().long().clamp(0, self.classes - 1)
        states, _ = self.lstm(self.embedding(sequence))
        scores: torch.Tensor = self.out(states[:, -1, :])
        return scores.masked_fill(self.pad_mask, float("-inf"))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # noqa: UP006
        probabilities = torch.softmax(self.logits(x), dim=1)
        scores, items = torch.topk(probabilities, self.k, dim=1)
        return items.to(x.dtype), scores


@dataclass(frozen=True)
class _Params:
    embedding_dim: int
    hidden: int
    epochs: int
    batch_size: int
    lr: float
    export_k: int
    seed: int


def _params(params: Mapping[str, str]) -> _Params:
    return _Params(
        embedding_dim=int(float(params["embedding_dim"])),
        hidden=int(float(params["hidden"])),
        epochs=int(float(params["epochs"])),
        batch_size=int(float(params["batch_size"])),
        lr=float(params["lr"]),
        export_k=int(float(params["export_k"])),
        seed=int(float(params["seed"])),
    )


def sequence_span(inputs: tuple[signature_pb2.SignatureInput, ...]) -> tuple[signature_pb2.SignatureInput, slice]:
    """The first sequence input and the tensor columns it takes; ``FailedPrecondition`` when there is none."""
    spans = InputEncoder(inputs).spans
    for j, spec in enumerate(inputs):
        if spec.kind == signature_pb2.INPUT_KIND_SEQUENCE:
            return spec, spans[j]
    raise FailedPrecondition(
        "sequence_next_item needs a sequence input (a list feature, e.g. an AGGREGATION_LAST_N of the target "
        f"field); the feature service gives {', '.join(i.name for i in inputs) or 'no inputs'}"
    )


def item_outputs(sequence_input: str, k: int) -> tuple[signature_pb2.SignatureOutput, signature_pb2.SignatureOutput]:
    """The ``items`` (``OUTPUT__0``) and ``scores`` (``OUTPUT__1``) outputs, FP32 ``[k]`` each."""
    return (
        signature_pb2.SignatureOutput(
            name="items",
            tensor="OUTPUT__0",
            dtype=common_pb2.VALUE_TYPE_DOUBLE,
            shape=[k],
            meaning=f"top-{k} vocabulary indexes (i + 1) of input {sequence_input}, best first",
            indexes_vocabulary_of=sequence_input,
        ),
        signature_pb2.SignatureOutput(
            name="scores",
            tensor="OUTPUT__1",
            dtype=common_pb2.VALUE_TYPE_DOUBLE,
            shape=[k],
            meaning="softmax probability of each of the items, descending",
        ),
    )


def _rank_scores(module: NextItemModel) -> RankScores:
    def scores(x: NDArray[np.float32]) -> NDArray[np.float32]:
        parts = []
        with torch.inference_mode():
            for begin in range(0, len(x), SCORE_BATCH_ROWS):
                batch = torch.from_numpy(np.ascontiguousarray(x[begin : begin + SCORE_BATCH_ROWS], dtype=np.float32))
                parts.append(module.logits(batch).numpy())
        width = module.classes
        return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float32)

    return scores


@dataclass(frozen=True)
class SequenceNextItemTrainer:
    """The ``sequence_next_item`` ``Trainer`` (see the module doc)."""

    name: str = "sequence_next_item"
    task: signature_pb2.Task = signature_pb2.TASK_NEXT_ITEM

    @property
    def defaults(self) -> Mapping[str, str]:
        return {
            "embedding_dim": "64",
            "hidden": "128",
            "epochs": "10",
            "batch_size": "512",
            "lr": "0.003",
            "max_len": "20",
            "export_k": "100",
            "seed": "7",
        }

    def check(self, params: Mapping[str, str]) -> None:
        number(params, "embedding_dim", 1, 1024)
        number(params, "hidden", 1, 4096)
        number(params, "epochs", 1, 1000)
        number(params, "batch_size", 1, 1_000_000)
        number(params, "lr", 1e-6, 1.0)
        number(params, "max_len", 1, 1000)
        number(params, "export_k", 1, 1000)
        number(params, "seed", 0, 2**31)

    def fit(self, data: Dataset, params: Mapping[str, str], *, threads: int, progress: Progress) -> Fitted:
        p = _params(params)
        spec, span = sequence_span(data.inputs)
        vocabulary = len(spec.vocabulary)
        if vocabulary == 0:
            raise FailedPrecondition(f"sequence input {spec.name!r} has an empty vocabulary: no items to rank")
        torch.manual_seed(p.seed)
        torch.set_num_threads(threads)
        module = NextItemModel(
            vocabulary,
            start=span.start,
            length=span.stop - span.start,
            embedding_dim=p.embedding_dim,
            hidden=p.hidden,
            k=min(p.export_k, vocabulary),
        )
        targets = np.asarray(data.y_train, dtype=np.int64)
        known = (targets > 0) & (targets <= vocabulary)
        if not known.any():
            raise FailedPrecondition("no training row has a target in the item vocabulary")
        _train(module, data.x_train[known], targets[known], p, progress=progress)
        return Fitted(module=module, outputs=item_outputs(spec.name, module.k), rank_scores=_rank_scores(module))


def _train(
    module: NextItemModel, x: NDArray[np.float32], targets: NDArray[np.int64], p: _Params, *, progress: Progress
) -> None:
    """Adam on cross-entropy over mini-batches, on CUDA when available; leaves ``module`` on the CPU in eval mode."""
    generator = torch.Generator().manual_seed(p.seed)
    dev = device()
    module.to(dev)
    optimiser = torch.optim.Adam(module.parameters(), lr=p.lr)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
    ys = torch.from_numpy(np.ascontiguousarray(targets)).to(dev)
    module.train()
    try:
        for epoch in range(1, p.epochs + 1):
            order = torch.randperm(len(xs), generator=generator).to(dev)
            total = torch.zeros((), device=dev)
            for begin in range(0, len(xs), p.batch_size):
                idx = order[begin : begin + p.batch_size]
                optimiser.zero_grad(set_to_none=True)
                loss = functional.cross_entropy(module.logits(xs[idx]), ys[idx])
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                total += loss.detach() * len(idx)
            progress(epoch, float(total) / max(len(xs), 1))
    finally:
        module.eval()
        module.cpu()


TRAINER = SequenceNextItemTrainer()
