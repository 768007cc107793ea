"""A ``TASK_NEXT_ITEM`` model in Triton for the Recommend integration test and ``bench/recommend``: the
``sequence_next_item`` trainer's own module (``NextItemModel``: embeddings + LSTM, top-k inside the model)
with seeded, untrained weights, exported through the training service's export code (``save_torchscript``
+ ``export_version``: ``INPUT__0`` FP32 ``[width]``, ``OUTPUT__0`` indexes and ``OUTPUT__1`` scores FP32
``[k]``), and the signature the trainer registers for it (``item_outputs``).

The module reads the sequence input's ``length`` columns (the first ones here) and ignores the numeric
inputs after them; ``expected`` runs it eagerly in PyTorch, the parity side of a test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from aimesh.api.common.v1 import signature_pb2
from aimesh.training.export import export_version
from aimesh.training.model import save_torchscript
from aimesh.training.trainers.sequence_next_item import NextItemModel, item_outputs


def export(
    repository: Path,
    triton_name: str,
    *,
    vocabulary: int,
    length: int,
    k: int,
    extra_inputs: int = 0,
    embedding_dim: int = 64,
    hidden: int = 128,
    seed: int = 7,
) -> NextItemModel:
    """Export a seeded ``NextItemModel`` as ``repository/triton_name`` version 1 (input width ``length +
    extra_inputs``; the Triton model owned by a registered model of the same name); returns the eager module."""
    torch.manual_seed(seed)
    module = NextItemModel(vocabulary, start=0, length=length, embedding_dim=embedding_dim, hidden=hidden, k=k).eval()
    with tempfile.TemporaryDirectory() as tmp:
        scripted = Path(tmp) / "model.pt"
        save_torchscript(module, scripted)
        export_version(
            repository,
            triton_name,
            1,
            scripted,
            model_name=triton_name,
            n_inputs=length + extra_inputs,
            output_widths=[k, k],
        )
    return module


def expected(module: NextItemModel, row: Sequence[float]) -> tuple[list[int], list[float]]:
    """The eager module's (indexes, scores) for one encoded row."""
    with torch.inference_mode():
        items, scores = module(torch.tensor([list(row)], dtype=torch.float32))
    return [int(i) for i in items[0].tolist()], [float(s) for s in scores[0].tolist()]


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
    """The ``TASK_NEXT_ITEM`` signature of an exported model: the sequence input first, then numeric inputs."""
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
        outputs=list(item_outputs(sequence_input, k)),
        entity_types=[entity],
        key_entity=entity,
        task=signature_pb2.TASK_NEXT_ITEM,
        input_tensor="INPUT__0",
        trainer="sequence_next_item",
        popular_items=popular,
        popular_item_shares=shares,
    )


def encode(history: Sequence[str], vocabulary: Sequence[str], length: int) -> list[float]:
    """The sequence columns the contract makes of ``history`` (written out, not via InputEncoder)."""
    tail = list(history)[-length:]
    indexes = [float(vocabulary.index(x) + 1) if x in vocabulary else 0.0 for x in tail]
    return [0.0] * (length - len(indexes)) + indexes
