"""A model version with three numeric inputs, one categorical input and a score profile, and predictions
of it (encoded as inference encodes them), optionally with one input shifted."""

from __future__ import annotations

import numpy as np

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.distribution import categorical_profile, numeric_profile
from aimesh.core.model_catalog import ModelCatalog

NUMERIC = ("v:a", "v:b", "v:c")
CATEGORICAL = "v:kind"
VOCABULARY = ("x", "y", "z")
SHARES = (0.6, 0.3, 0.1)


def registered(model: str = "m", version: int = 1, *, seed: int = 1) -> events_pb2.ModelEvent:
    """The VERSION_REGISTERED event, its profiles built from 20 000 reference rows."""
    rng = np.random.default_rng(seed)
    profiles = [numeric_profile(name, rng.normal(0.0, 1.0 + j, 20_000)) for j, name in enumerate(NUMERIC)]
    kinds = rng.choice(VOCABULARY, size=20_000, p=SHARES).tolist()
    profiles.append(categorical_profile(CATEGORICAL, kinds))
    inputs = [signature_pb2.SignatureInput(name=n, kind=signature_pb2.INPUT_KIND_NUMERIC) for n in NUMERIC]
    inputs.append(
        signature_pb2.SignatureInput(name=CATEGORICAL, kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=VOCABULARY)
    )
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=version,
        triton_model_name=model,
        features=[*NUMERIC, CATEGORICAL],
        reference_profile=training_pb2.ScoreProfile(
            bin_edges=[0.0, 0.25, 0.5, 0.75, 1.0], fractions=[0.25] * 4, count=20_000
        ),
        signature=signature_pb2.ModelSignature(inputs=inputs),
        input_profiles=profiles,
    )


def catalog_with(*events: events_pb2.ModelEvent) -> ModelCatalog:
    catalog = ModelCatalog()
    for event in events:
        catalog.apply(event)
    return catalog


def predictions(
    n: int,
    *,
    model: str = "m",
    version: int = 1,
    shift: str = "",
    by: float = 1.5,
    seed: int = 2,
    prefix: str = "e",
    shadow: bool = False,
) -> list[inference_events.Prediction]:
    """``n`` predictions like the reference, ``shift`` (an input name) moved by ``by`` of its stddevs;
    every tenth row has ``v:b`` missing (fed its fill, listed in missing_features)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        features = {name: float(rng.normal(0.0, 1.0 + j)) for j, name in enumerate(NUMERIC)}
        if shift in features:
            features[shift] += by * (1.0 + NUMERIC.index(shift))
        features[CATEGORICAL] = float(rng.choice(len(VOCABULARY), p=SHARES) + 1)
        missing = []
        if i % 10 == 0:
            features["v:b"], missing = 0.0, ["v:b"]
        out.append(
            inference_events.Prediction(
                event_id=f"{prefix}-{i}",
                model_name=model,
                model_version=version,
                score=float(rng.uniform()),
                features=features,
                missing_features=missing,
                shadow=shadow,
            )
        )
    return out
