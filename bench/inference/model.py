"""The benchmark's model and data: a tabular binary classifier trained and exported the way the training
service does it, over ten numeric activity aggregates of an ``account`` entity.

- ``values``: seeded per-entity feature values (log-normal amounts, Poisson counts, shares; a few MISSING),
  what the feature stub serves;
- ``train``: a seeded training slice from the same distribution with a label that depends on the values
  (about 5 % positive); ``aimesh.core.signature.infer_inputs`` makes the signature inputs of it (numeric,
  the missing value the present values' mean) and ``InputEncoder.matrix`` its matrix, as the pipeline
  does; ``mlp_classifier``'s own ``TRAINER.fit`` (``TabularEncoder`` standardising the columns, ReLU layers
  32, 16, a sigmoid) trains it for a few epochs;
- ``export``: ``save_torchscript`` + ``export_version`` into the stack's Triton repository under a name of
  the run (python backend, ``max_batch_size`` 256, dynamic batching, one CPU instance), and the signature
  the pipeline registers (``signature_of``'s fields);
- ``registry_events``: version 1 registered with that signature and alias ``champion`` -> 1.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from torch import nn

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.signature import InputEncoder, infer_inputs
from aimesh.training import model as training_model
from aimesh.training.deploy import output_widths
from aimesh.training.export import export_version
from aimesh.training.trainers.base import Dataset
from aimesh.training.trainers.mlp_classifier import TRAINER

ENTITY = "account"
FEATURE_SERVICE = "bench_score"
VIEW = "bench_activity"
FEATURES = tuple(
    f"{VIEW}:{name}"
    for name in (
        "count_1h",
        "sum_1h",
        "mean_24h",
        "max_24h",
        "count_7d",
        "sum_7d",
        "mean_30d",
        "std_30d",
        "days_since_first",
        "night_share_30d",
    )
)
MISSING_SHARE = 0.02
"""Share of values the stub serves as MISSING (inference feeds the signature's fill)."""


def _columns(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """``[n, 10]`` values in ``FEATURES``' order."""
    count_1h = rng.poisson(0.5, n)
    mean_24h = rng.lognormal(3.5, 1.0, n)
    count_7d = count_1h + rng.poisson(12.0, n)
    mean_30d = mean_24h * rng.lognormal(0.0, 0.3, n)
    return np.column_stack(
        [
            count_1h,
            count_1h * mean_24h * rng.lognormal(0.0, 0.5, n),
            mean_24h,
            mean_24h * rng.lognormal(0.7, 0.4, n),
            count_7d,
            count_7d * mean_30d,
            mean_30d,
            mean_30d * rng.uniform(0.2, 1.5, n),
            rng.uniform(0.0, 900.0, n).round(),
            rng.beta(1.5, 8.0, n),
        ]
    ).astype(np.float64)


def values(entities: int, seed: int) -> dict[str, list[float | None]]:
    """Entity id -> one value per feature (None: MISSING), seeded."""
    rng = np.random.default_rng(seed)
    x = _columns(rng, entities)
    missing = rng.random(x.shape) < MISSING_SHARE
    return {
        f"acct-{e:05d}": [None if missing[e, j] else float(x[e, j]) for j in range(len(FEATURES))]
        for e in range(entities)
    }


@dataclass(frozen=True)
class Trained:
    """The fitted module, its signature inputs and outputs, and the training slice's size and positives."""

    module: nn.Module
    inputs: tuple[signature_pb2.SignatureInput, ...]
    outputs: tuple[signature_pb2.SignatureOutput, ...]
    rows: int
    positives: int
    epochs: int


def train(rows: int, epochs: int, seed: int) -> Trained:
    """Fit ``mlp_classifier`` (its defaults but ``epochs``, one thread) on ``rows`` seeded rows (see the
    module doc)."""
    rng = np.random.default_rng(seed + 1)
    x = _columns(rng, rows)
    z = (
        0.9 * np.log1p(x[:, 1])
        + 0.6 * x[:, 0]
        - 0.5 * np.log1p(x[:, 6])
        + 4.0 * x[:, 9]
        - 0.002 * x[:, 8]
        + rng.normal(0, 0.5, rows)
    )
    y = (z > np.quantile(z, 0.95)).astype(np.float32)
    missing = rng.random(x.shape) < MISSING_SHARE
    columns: list[list[float | None]] = [
        [None if missing[r, j] else float(x[r, j]) for r in range(rows)] for j in range(len(FEATURES))
    ]
    inputs = infer_inputs(FEATURES, columns)
    matrix = InputEncoder(inputs).matrix(columns)
    cut = int(rows * 0.9)
    data = Dataset(tuple(inputs), matrix[:cut], y[:cut], matrix[cut:], y[cut:])
    params = {**TRAINER.defaults, "epochs": str(epochs)}
    TRAINER.check(params)
    fitted = TRAINER.fit(data, params, threads=1, progress=lambda epoch, loss: None)
    return Trained(fitted.module, tuple(inputs), fitted.outputs, rows, int(y.sum()), epochs)


def signature(trained: Trained) -> signature_pb2.ModelSignature:
    """What the pipeline registers for a run over ``FEATURES`` keyed by ``ENTITY`` (no context fields)."""
    return signature_pb2.ModelSignature(
        inputs=trained.inputs,
        outputs=trained.outputs,
        entity_types=[ENTITY],
        key_entity=ENTITY,
        task=TRAINER.task,
        input_tensor="INPUT__0",
        trainer=TRAINER.name,
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
    sig: signature_pb2.ModelSignature, by_entity: Mapping[str, Sequence[float | None]]
) -> dict[str, list[float]]:
    """Entity id -> the input row inference builds of its values (``InputEncoder``: MISSING -> the fill)."""
    encoder = InputEncoder(sig.inputs)
    return {entity: encoder.row(list(vals)) for entity, vals in by_entity.items()}


def fills(sig: signature_pb2.ModelSignature) -> list[float]:
    """The value each input takes when MISSING (what a caller of Triton itself must know of the model)."""
    return [float(i.missing_value) for i in sig.inputs]


def registry_events(
    name: str, triton_name: str, sig: signature_pb2.ModelSignature
) -> tuple[events_pb2.ModelEvent, events_pb2.ModelEvent]:
    """Version 1 registered with ``sig``, and alias ``champion`` -> 1."""
    registered = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=name,
        version=1,
        triton_model_name=triton_name,
        triton_model_version=1,
        features=FEATURES,
        feature_service=FEATURE_SERVICE,
        signature=sig,
    )
    champion = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=name,
        version=1,
        alias_change=training_pb2.AliasChange(model_name=name, alias="champion", new_version=1),
    )
    return registered, champion
