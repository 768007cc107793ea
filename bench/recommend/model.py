"""The benchmark's model: ``sequence_next_item``'s module (embeddings + LSTM + top-k inside the model) with
seeded, untrained weights, exported through the training service's export code into the stack's Triton
repository (``tests/integration/next_item_model.py``, which the Recommend integration test uses too), its
``TASK_NEXT_ITEM`` signature and the registry events that route alias ``champion`` to it.

Untrained weights cost what trained ones cost (the same shapes run the same kernels); training it is
``bench.recommend.training``'s job.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from tests.integration import next_item_model

SEQUENCE_INPUT = "bench_history:recent_items"
ENTITY = "member"
FEATURE_SERVICE = "bench_next_item"


@dataclass(frozen=True, slots=True)
class ModelShape:
    vocabulary: int
    length: int
    max_k: int
    embedding_dim: int = 64
    hidden: int = 128
    seed: int = 7


def vocabulary(size: int) -> list[str]:
    return [f"v-{i:05d}" for i in range(size)]


def export(repository: Path, triton_name: str, shape: ModelShape) -> Path:
    """Write ``repository/triton_name`` (version 1, ``INPUT__0`` ``[length]``, ``OUTPUT__0``/``OUTPUT__1``
    ``[max_k]``); returns its directory (``remove`` deletes it)."""
    next_item_model.export(
        repository,
        triton_name,
        vocabulary=shape.vocabulary,
        length=shape.length,
        k=shape.max_k,
        embedding_dim=shape.embedding_dim,
        hidden=shape.hidden,
        seed=shape.seed,
    )
    return repository / triton_name


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def signature(shape: ModelShape, popular: Sequence[str]) -> signature_pb2.ModelSignature:
    return next_item_model.signature(
        SEQUENCE_INPUT,
        vocabulary(shape.vocabulary),
        length=shape.length,
        k=shape.max_k,
        entity=ENTITY,
        popular=popular,
        shares=[1.0 / len(popular)] * len(popular) if popular else [],
    )


def registry_events(
    model: str, triton_name: str, sig: signature_pb2.ModelSignature
) -> tuple[events_pb2.ModelEvent, events_pb2.ModelEvent]:
    """Version 1 registered with ``sig``, and alias ``champion`` -> 1."""
    registered = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=1,
        triton_model_name=triton_name,
        triton_model_version=1,
        features=[SEQUENCE_INPUT],
        feature_service=FEATURE_SERVICE,
        signature=sig,
    )
    champion = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=model,
        version=1,
        alias_change=training_pb2.AliasChange(model_name=model, alias="champion", new_version=1),
    )
    return registered, champion
