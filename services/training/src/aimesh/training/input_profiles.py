"""The reference profile of each numeric and categorical input of a version, from its evaluation slice,
and how the registry stores the list.

A profile describes what monitor will see in ``Prediction.features``: the encoded value of each input
when it was not fed its fill (``Prediction.missing_features`` lists the others). So a numeric value is
missing when the encoder fills it, and a categorical value is missing when it is absent or outside the
vocabulary (fed 0); the present categorical values are decoded back to their vocabulary strings.
Sequence inputs get no profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.distribution import categorical_profile, numeric_profile
from aimesh.core.signature import InputEncoder, Scalar


def input_profiles(
    inputs: Sequence[signature_pb2.SignatureInput], columns: Sequence[Sequence[Scalar]], encoded: NDArray[np.float32]
) -> list[training_pb2.FeatureProfile]:
    """One profile per numeric or categorical input, in signature order, from the raw ``columns`` (one per
    input) of the evaluation slice and their ``encoded`` matrix (``InputEncoder(inputs).matrix(columns)``)."""
    encoder = InputEncoder(inputs)
    profiles: list[training_pb2.FeatureProfile] = []
    for j, (spec, span, column) in enumerate(zip(inputs, encoder.spans, columns, strict=True)):
        values = encoded[:, span.start].astype(np.float64)
        if spec.kind == signature_pb2.INPUT_KIND_NUMERIC:
            missing = np.fromiter((encoder.is_missing(j, item) for item in column), dtype=bool, count=len(column))
            values[missing] = np.nan
            profiles.append(numeric_profile(spec.name, values))
        elif spec.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
            vocabulary = spec.vocabulary
            labels = [vocabulary[index - 1] if index > 0 else None for index in values.astype(np.int64).tolist()]
            profiles.append(categorical_profile(spec.name, labels))
    return profiles


def to_bytes(profiles: Sequence[training_pb2.FeatureProfile]) -> bytes:
    """The stored form of a list of profiles (a ``ModelVersion`` holding only them)."""
    return training_pb2.ModelVersion(input_profiles=profiles).SerializeToString()


def from_bytes(stored: bytes | None) -> list[training_pb2.FeatureProfile]:
    """The profiles ``to_bytes`` stored; none for a version registered before profiles existed (NULL)."""
    holder = training_pb2.ModelVersion()
    holder.ParseFromString(stored or b"")
    return list(holder.input_profiles)
