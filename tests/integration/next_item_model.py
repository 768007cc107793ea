"""A small ``TASK_NEXT_ITEM`` model satisfying the serving contract, exported through the training
service's export code (``save_torchscript`` + ``export_version``), for the Recommend integration test and
``bench/recommend``.

Contract (what ``sequence_next_item`` exports): ``INPUT__0`` FP32 ``[width]`` whose first ``length``
columns are the sequence input's vocabulary indexes (``i + 1``, right-aligned, 0 = padding/unknown), then
one column per numeric input (ignored here); ``OUTPUT__0`` FP32 ``[k]`` = the top-``k`` indexes (never 0)
best first, ``OUTPUT__1`` FP32 ``[k]`` = their softmax probabilities, descending. The module: seeded
embeddings of the indexes, averaged over the non-padding columns, a linear layer over the vocabulary,
softmax, top-k inside the model. ``expected`` runs the same module eagerly in PyTorch (the parity side).
(No ``from __future__ import annotations``: TorchScript reads the annotations.)
"""

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Tuple  # noqa: UP035 - TorchScript needs typing.Tuple for forward's return type

import torch
from torch import nn

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.training.export import export_version
from aimesh.training.model import save_torchscript

INPUT_TENSOR = "INPUT__0"


class TinyNextItem(nn.Module):
    """Embedding mean -> linear -> softmax -> top-k (see the module doc)."""

    pad_mask: torch.Tensor

    def __init__(self, vocabulary: int, *, length: int, k: int, dim: int = 16, seed: int = 7) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.classes = vocabulary + 1
        self.length = length
        self.k = k
        self.embedding = nn.Embedding(self.classes, dim, padding_idx=0)
        self.out = nn.Linear(dim, self.classes)
        mask = torch.zeros(1, self.classes, dtype=torch.bool)
        mask[0, 0] = True
        self.register_buffer("pad_mask", mask)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # noqa: UP006
        sequence = x[:, : self.length].round().long().clamp(0, self.classes - 1)
        known = (sequence > 0).to(x.dtype).sum(dim=1, keepdim=True).clamp(min=1.0)
        hidden = self.embedding(sequence).sum(dim=1) / known
        logits = self.out(hidden).masked_fill(self.pad_mask, float("-inf"))
        scores, items = torch.topk(torch.softmax(logits, dim=1), self.k, dim=1)
        return items.to(x.dtype), scores

    def expected(self, row: Sequence[float]) -> tuple[list[int], list[float]]:
        """The eager module's (indexes, scores) for one encoded row."""
        with torch.inference_mode():
            items, scores = self(torch.tensor([list(row)], dtype=torch.float32))
        return [int(i) for i in items[0].tolist()], [float(s) for s in scores[0].tolist()]


def export(
    repository: Path, triton_name: str, *, model_name: str, vocabulary: int, length: int, k: int, extra_inputs: int
) -> TinyNextItem:
    """Export a ``TinyNextItem`` as ``repository/triton_name`` version 1 (input width ``length + extra_inputs``);
    returns the module (eager, for ``expected``)."""
    module = TinyNextItem(vocabulary, length=length, k=k).eval()
    with tempfile.TemporaryDirectory() as tmp:
        scripted = Path(tmp) / "model.pt"
        save_torchscript(module, scripted)
        export_version(
            repository,
            triton_name,
            1,
            scripted,
            model_name=model_name,
            n_inputs=length + extra_inputs,
            output_widths=[k, k],
        )
    return module


def signature(
    sequence_input: str,
    vocabulary: Sequence[str],
    *,
    length: int,
    k: int,
    numeric_inputs: Sequence[str] = (),
    entity: str = "member",
    popular: Sequence[str] = (),
    shares: Sequence[float] = (),
) -> signature_pb2.ModelSignature:
    """The ``TASK_NEXT_ITEM`` signature of an exported ``TinyNextItem`` (outputs as ``sequence_next_item``'s)."""
    return signature_pb2.ModelSignature(
        inputs=[
            signature_pb2.SignatureInput(
                name=sequence_input, kind=signature_pb2.INPUT_KIND_SEQUENCE, vocabulary=vocabulary, length=length
            ),
            *(
                signature_pb2.SignatureInput(name=name, kind=signature_pb2.INPUT_KIND_NUMERIC, missing_value=0.0)
                for name in numeric_inputs
            ),
        ],
        outputs=[
            signature_pb2.SignatureOutput(
                name="items",
                tensor="OUTPUT__0",
                dtype=common_pb2.VALUE_TYPE_DOUBLE,
                shape=[k],
                indexes_vocabulary_of=sequence_input,
            ),
            signature_pb2.SignatureOutput(
                name="scores", tensor="OUTPUT__1", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[k]
            ),
        ],
        entity_types=[entity],
        key_entity=entity,
        task=signature_pb2.TASK_NEXT_ITEM,
        input_tensor=INPUT_TENSOR,
        trainer="test_tiny_next_item",
        popular_items=popular,
        popular_item_shares=shares,
    )


def encode(history: Sequence[str], vocabulary: Sequence[str], length: int) -> list[float]:
    """The sequence columns the contract makes of ``history`` (written out, not via InputEncoder)."""
    tail = list(history)[-length:]
    indexes = [float(vocabulary.index(x) + 1) if x in vocabulary else 0.0 for x in tail]
    return [0.0] * (length - len(indexes)) + indexes
