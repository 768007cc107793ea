"""The retail next-item pack: its sources, feature definitions and training spec, applied through the public APIs.

``apply_pack`` registers ``pack/sources.yaml`` with ingest and applies ``pack/features.yaml`` to the
feature service, exactly as ``aimesh ingest apply`` / ``aimesh feature apply`` do; ``training_spec``
reads ``pack/training.yaml`` into a ``RunSpec`` (see ``aimesh.examples.mesh``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aimesh.api.training.v1 import training_pb2
from aimesh.examples import mesh

PACK = Path(__file__).parent / "pack"
SOURCES = PACK / "sources.yaml"
FEATURES = PACK / "features.yaml"
TRAINING = PACK / "training.yaml"


async def apply_pack(ingest_grpc: str, feature_grpc: str) -> list[str]:
    """Register the pack's sources and apply its features; returns one line per change. Idempotent."""
    return await mesh.apply_pack(PACK, ingest_grpc, feature_grpc)


def training_spec(params: Mapping[str, str] | None = None, **fields: str) -> training_pb2.RunSpec:
    """The pack's ``RunSpec``; ``params`` are added to its trainer parameters, ``fields`` override top-level
    string fields (e.g. ``triton_model_name``)."""
    return mesh.read_run_spec(TRAINING, params, **fields)
