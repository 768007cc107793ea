"""A use case's model and data (``bench.inference.cases``): a tabular binary classifier trained and exported
the way the training service does it.

- ``values``: seeded per-entity values of every feature (a few of the stored ones MISSING); the stored ones
  are what the feature stub serves, the on-demand ones the context each request sends;
- ``train``: a seeded training slice from the same distribution with the case's label;
  ``aimesh.core.signature.infer_inputs`` makes the signature inputs of it (numeric, the missing value the
  present values' mean; categorical for strings, their vocabulary) and ``InputEncoder.matrix`` its matrix, as
  the pipeline does; the case's trainer's own ``TRAINER.fit`` (its defaults but ``epochs``, one thread)
  trains it;
- ``export``: ``save_torchscript`` + ``export_version`` into the stack's Triton repository under a name of
  the run (python backend, ``max_batch_size`` 256, dynamic batching, one CPU instance), and the signature
  the pipeline registers (``signature_of``'s fields, the context fields with their types);
- ``registry_events``: version 1 registered with that signature and alias ``champion`` -> 1.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.signature import InputEncoder, Scalar, infer_inputs
from aimesh.training import model as training_model
from aimesh.training.deploy import output_widths
from aimesh.training.export import export_version
from aimesh.training.trainers.base import Dataset
from bench.inference.cases import Case, Columns, context_value, stored
from bench.serving.feature_stub import StubService, StubValue

MISSING_SHARE = 0.02
"""Share of stored values the stub serves as MISSING (inference feeds the signature's fill)."""


def _with_missing(case: Case, columns: Columns, rng: np.random.Generator) -> Columns:
    rows = len(columns[0])
    out = [list(c) for c in columns]
    for j in stored(case):
        gone = rng.random(rows) < MISSING_SHARE
        out[j] = [None if g else v for g, v in zip(gone, out[j], strict=True)]
    return out


def values(case: Case, entities: int, seed: int) -> dict[str, list[Scalar]]:
    """Entity id -> one value per feature of ``case`` (None: MISSING), seeded."""
    rng = np.random.default_rng(seed)
    columns = _with_missing(case, case.columns(rng, entities), rng)
    return {f"{case.id_prefix}-{e:05d}": [c[e] for c in columns] for e in range(entities)}


def contexts(case: Case, by_entity: Mapping[str, Sequence[Scalar]]) -> dict[str, dict[str, common_pb2.Value]]:
    """Entity id -> the request context its requests send (the on-demand features' fields)."""
    positions = [(case.features.index(name), field) for name, (field, _) in case.context.items()]
    return {e: {field: context_value(vals[j]) for j, field in positions} for e, vals in by_entity.items()}


def stub_service(case: Case, by_entity: Mapping[str, Sequence[Scalar]]) -> StubService:
    """What the feature stub serves for ``case``: the stored values, the on-demand features from the context."""
    rows: dict[str, list[StubValue]] = {
        e: [float(v) if isinstance(v, int | float) else v if isinstance(v, str) else None for v in vals]
        for e, vals in by_entity.items()
    }
    return StubService(case.features, rows, {name: field for name, (field, _) in case.context.items()})


@dataclass(frozen=True)
class Trained:
    """The fitted module, its signature inputs and outputs, and the training slice's size and positives."""

    case: Case
    module: nn.Module
    inputs: tuple[signature_pb2.SignatureInput, ...]
    outputs: tuple[signature_pb2.SignatureOutput, ...]
    rows: int
    positives: int
    epochs: int


def train(case: Case, rows: int, epochs: int, seed: int) -> Trained:
    """Fit the case's trainer (its defaults but ``epochs``, one thread) on ``rows`` seeded rows (see the
    module doc)."""
    rng = np.random.default_rng(seed + 1)
    raw = case.columns(rng, rows)
    y = case.label(raw, rng)
    columns = _with_missing(case, raw, rng)
    inputs = infer_inputs(case.features, columns)
    matrix = InputEncoder(inputs).matrix(columns)
    cut = int(rows * 0.9)
    data = Dataset(tuple(inputs), matrix[:cut], y[:cut], matrix[cut:], y[cut:])
    params = {**case.trainer.defaults, "epochs": str(epochs)}
    case.trainer.check(params)
    fitted = case.trainer.fit(data, params, threads=1, progress=lambda epoch, loss: None)
    return Trained(case, fitted.module, tuple(inputs), fitted.outputs, rows, int(y.sum()), epochs)


def signature(trained: Trained) -> signature_pb2.ModelSignature:
    """What the pipeline registers for a run over the case's features keyed by its entity."""
    case = trained.case
    return signature_pb2.ModelSignature(
        inputs=trained.inputs,
        outputs=trained.outputs,
        entity_types=[case.entity],
        key_entity=case.entity,
        context_fields=[signature_pb2.ContextField(name=f, type=t) for f, t in case.context.values()],
        task=case.trainer.task,
        input_tensor="INPUT__0",
        trainer=case.trainer.name,
    )


def export(repository: Path, triton_name: str, trained: Trained, sig: signature_pb2.ModelSignature) -> Path:
    """``repository/triton_name`` version 1, exported by the training service's code; returns the directory."""
    with tempfile.TemporaryDirectory() as tmp:
        scripted = Path(tmp) / "model.pt"
        training_model.save_torchscript(trained.module, scripted)
        export_version(
            repository,
            triton_name,
            1,
            scripted,
            model_name=triton_name,
            n_inputs=InputEncoder(sig.inputs).width,
            output_widths=output_widths(sig),
        )
    return repository / triton_name


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def eager_scores(trained: Trained, rows: Sequence[Sequence[float]]) -> list[float]:
    """The fitted module's own scores (PyTorch, eager) of encoded ``rows``."""
    return [float(s) for s in training_model.predict(trained.module, np.asarray(rows, dtype=np.float32))]


def encoded_rows(
    sig: signature_pb2.ModelSignature, by_entity: Mapping[str, Sequence[Scalar]]
) -> dict[str, list[float]]:
    """Entity id -> the input row inference builds of its values (``InputEncoder``: MISSING -> the fill)."""
    encoder = InputEncoder(sig.inputs)
    return {entity: encoder.row(list(vals)) for entity, vals in by_entity.items()}


def registry_events(
    case: Case, name: str, triton_name: str, sig: signature_pb2.ModelSignature
) -> tuple[events_pb2.ModelEvent, events_pb2.ModelEvent]:
    """Version 1 registered with ``sig``, and alias ``champion`` -> 1."""
    registered = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=name,
        version=1,
        triton_model_name=triton_name,
        triton_model_version=1,
        features=case.features,
        feature_service=case.feature_service,
        signature=sig,
    )
    champion = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=name,
        version=1,
        alias_change=training_pb2.AliasChange(model_name=name, alias="champion", new_version=1),
    )
    return registered, champion
