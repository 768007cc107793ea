"""Model signatures: how feature values become the model's input tensor, and what a request must carry.

One implementation for training and serving, so the encoding (categorical vocabulary, missing-value
policy) is the same on both sides:

- ``infer_inputs`` decides, from the training slice's values, which inputs are categorical (any string
  value) and records their vocabulary (most frequent first) and, for numeric inputs, the value fed
  when one is missing (the slice's mean);
- ``InputEncoder`` turns values into FP32 columns by that signature: a number as itself, a categorical
  value as ``vocabulary.index(value) + 1``, anything missing or unknown as the recorded fill (``0`` for
  categoricals);
- ``check_request`` refuses a Score request that lacks an entity id or a context field the signature
  names, or whose context value has the wrong type (``InvalidArgument`` naming the field and the
  expected type).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.core.errors import InvalidArgument

Scalar = float | int | str | bool | None
MAX_VOCABULARY = 1000
"""Most categories a categorical input keeps (the most frequent in training); the rest are 'unknown'."""

_TYPE_NAMES = {
    common_pb2.VALUE_TYPE_DOUBLE: "a number (double_value or int64_value)",
    common_pb2.VALUE_TYPE_INT64: "an integer (int64_value)",
    common_pb2.VALUE_TYPE_STRING: "a string (string_value)",
    common_pb2.VALUE_TYPE_BOOL: "a bool (bool_value)",
}
_ACCEPTED_KINDS = {
    common_pb2.VALUE_TYPE_DOUBLE: ("double_value", "int64_value"),
    common_pb2.VALUE_TYPE_INT64: ("int64_value",),
    common_pb2.VALUE_TYPE_STRING: ("string_value",),
    common_pb2.VALUE_TYPE_BOOL: ("bool_value",),
}


def scalar(value: common_pb2.Value) -> Scalar:
    """The Python value of a ``Value``; None when no kind is set (null)."""
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    found: Scalar = getattr(value, kind)
    return found


def to_value(item: Scalar) -> common_pb2.Value:
    """The ``Value`` of a Python scalar (None: null; bool before int, as bool is an int)."""
    if item is None:
        return common_pb2.Value()
    if isinstance(item, bool):
        return common_pb2.Value(bool_value=item)
    if isinstance(item, int):
        return common_pb2.Value(int64_value=item)
    if isinstance(item, float):
        return common_pb2.Value(double_value=item)
    return common_pb2.Value(string_value=str(item))


def _number(item: Scalar) -> float | None:
    if item is None or isinstance(item, str):
        return None
    number = float(item)
    return number if math.isfinite(number) else None


def infer_inputs(names: Sequence[str], columns: Sequence[Sequence[Scalar]]) -> list[signature_pb2.SignatureInput]:
    """The signature inputs of ``names`` from their training values (``columns[j]`` holds input ``j``).

    An input with any string value is categorical (vocabulary: its strings, most frequent first, ties by
    value, at most ``MAX_VOCABULARY``); otherwise numeric, missing values fed as the mean of the
    present ones (0.0 when none is present).
    """
    inputs = []
    for name, column in zip(names, columns, strict=True):
        strings = Counter(v for v in column if isinstance(v, str))
        if strings:
            ranked = sorted(strings.items(), key=lambda item: (-item[1], item[0]))[:MAX_VOCABULARY]
            inputs.append(
                signature_pb2.SignatureInput(
                    name=name, kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=[v for v, _ in ranked]
                )
            )
            continue
        numbers = [n for n in map(_number, column) if n is not None]
        mean = math.fsum(numbers) / len(numbers) if numbers else 0.0
        inputs.append(
            signature_pb2.SignatureInput(name=name, kind=signature_pb2.INPUT_KIND_NUMERIC, missing_value=mean)
        )
    return inputs


@dataclass(frozen=True)
class _Column:
    categorical: bool
    index: Mapping[str, int]
    fill: float


class InputEncoder:
    """Encodes feature values into the input tensor of a signature (see the module doc). Immutable."""

    def __init__(self, inputs: Sequence[signature_pb2.SignatureInput]) -> None:
        self.names = tuple(i.name for i in inputs)
        self._columns = tuple(
            _Column(
                categorical=i.kind == signature_pb2.INPUT_KIND_CATEGORICAL,
                index={v: k + 1 for k, v in enumerate(i.vocabulary)},
                fill=0.0 if i.kind == signature_pb2.INPUT_KIND_CATEGORICAL else float(i.missing_value),
            )
            for i in inputs
        )

    def _encode(self, column: _Column, item: Scalar) -> float:
        if column.categorical:
            return float(column.index.get(item, 0)) if isinstance(item, str) else 0.0
        number = _number(item)
        return column.fill if number is None else number

    def row(self, values: Sequence[Scalar]) -> list[float]:
        """One row, ``values[j]`` for input ``j``; raises ``ValueError`` for a wrong count."""
        if len(values) != len(self._columns):
            raise ValueError(f"{len(values)} values for {len(self._columns)} inputs")
        return [self._encode(c, v) for c, v in zip(self._columns, values, strict=True)]

    def matrix(self, columns: Sequence[Sequence[Scalar]]) -> NDArray[np.float32]:
        """``[rows, inputs]`` FP32 from ``columns[j]`` (the values of input ``j``, one per row)."""
        if len(columns) != len(self._columns):
            raise ValueError(f"{len(columns)} columns for {len(self._columns)} inputs")
        rows = len(columns[0]) if columns else 0
        out = np.empty((rows, len(self._columns)), dtype=np.float32)
        for j, (column, values) in enumerate(zip(self._columns, columns, strict=True)):
            out[:, j] = [self._encode(column, v) for v in values]
        return out

    def is_missing(self, j: int, item: Scalar) -> bool:
        """True when input ``j`` gets its fill for ``item`` (missing, wrong kind, or unknown category)."""
        column = self._columns[j]
        if column.categorical:
            return not isinstance(item, str) or item not in column.index
        return _number(item) is None


def type_name(value_type: common_pb2.ValueType) -> str:
    """How an error message names the expected kind of a ``ValueType``."""
    return _TYPE_NAMES.get(value_type, common_pb2.ValueType.Name(value_type))


def check_request(
    signature: signature_pb2.ModelSignature,
    entity_ids: Mapping[str, str],
    context: Mapping[str, common_pb2.Value],
) -> None:
    """Raise ``InvalidArgument`` naming every missing entity id, missing context field and mistyped value."""
    problems = [f"entity_ids[{e!r}] is missing" for e in signature.entity_types if not entity_ids.get(e)]
    for field in signature.context_fields:
        value = context.get(field.name)
        expected = type_name(field.type)
        if value is None or value.WhichOneof("kind") is None:
            problems.append(f"context[{field.name!r}] is missing (expected {expected})")
            continue
        kind = value.WhichOneof("kind")
        if kind not in _ACCEPTED_KINDS.get(field.type, (kind,)):
            problems.append(f"context[{field.name!r}] is a {kind}, expected {expected}")
        elif kind == "double_value" and not math.isfinite(value.double_value):
            problems.append(f"context[{field.name!r}] is {value.double_value}, expected a finite number")
    if problems:
        raise InvalidArgument("; ".join(problems))


def value_type_of(item: Scalar) -> common_pb2.ValueType:
    """The ``ValueType`` of a Python scalar (floats and ints of a numeric column are DOUBLE)."""
    if isinstance(item, bool):
        return common_pb2.VALUE_TYPE_BOOL
    if isinstance(item, int | float):
        return common_pb2.VALUE_TYPE_DOUBLE
    return common_pb2.VALUE_TYPE_STRING
