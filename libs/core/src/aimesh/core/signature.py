"""Model signatures: how feature values become the model's input tensor, and what a request must carry.

One implementation for training and serving, so the encoding (categorical vocabulary, missing-value
policy) is the same on both sides:

- ``infer_inputs`` decides, from the training slice's values, which inputs are sequences (any list
  value), categorical (any string value) or numeric, and records their vocabulary (most frequent first),
  a sequence's length, and for numeric inputs the value fed when one is missing (the slice's mean);
- ``InputEncoder`` turns values into FP32 columns by that signature: a number as itself, a categorical
  value as ``vocabulary.index(value) + 1``, anything missing or unknown as the recorded fill (``0`` for
  categoricals); a sequence input takes ``length`` columns: the newest ``length`` elements of the list,
  oldest first, right-aligned, each as its vocabulary index + 1, with ``0`` for unused leading columns
  and for elements outside the vocabulary;
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

Element = float | int | str | bool | None
"""One element of a list value (no nested lists)."""
Scalar = float | int | str | bool | tuple[Element, ...] | None
"""The Python value of a ``Value``: a scalar, a tuple of scalars for a list value (oldest first), or None."""
MAX_VOCABULARY = 1000
"""Most categories a categorical input keeps (the most frequent in training); the rest are 'unknown'."""
MAX_SEQUENCE_VOCABULARY = 100_000
"""Most distinct elements a sequence input keeps (the most frequent in training); the rest are 'unknown'."""
DEFAULT_SEQUENCE_LENGTH = 20
"""Columns a sequence input takes unless ``infer_inputs`` is told otherwise."""

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


def _element(value: common_pb2.Value) -> Element:
    kind = value.WhichOneof("kind")
    if kind == "list_value":
        raise ValueError("a list value inside a list value (lists are not nested)")
    found: Element = None if kind is None else getattr(value, kind)
    return found


def scalar(value: common_pb2.Value) -> Scalar:
    """The Python value of a ``Value``; None when no kind is set (null).

    A ``list_value`` becomes a tuple of its elements' Python values, in list order (an empty tuple for an
    empty list); a list nested in a list raises ``ValueError``.
    """
    if value.WhichOneof("kind") == "list_value":
        return tuple(_element(v) for v in value.list_value.values)
    return _element(value)


def to_value(item: Scalar) -> common_pb2.Value:
    """The ``Value`` of a Python scalar (None: null; bool before int, as bool is an int; a tuple: list_value)."""
    if item is None:
        return common_pb2.Value()
    if isinstance(item, tuple):
        return common_pb2.Value(list_value=common_pb2.ValueList(values=[_to_element(v) for v in item]))
    return _to_element(item)


def _to_element(item: Element) -> common_pb2.Value:
    if item is None:
        return common_pb2.Value()
    if isinstance(item, bool):
        return common_pb2.Value(bool_value=item)
    if isinstance(item, int):
        return common_pb2.Value(int64_value=item)
    if isinstance(item, float):
        return common_pb2.Value(double_value=item)
    return common_pb2.Value(string_value=str(item))


def _is_list(item: object) -> bool:
    return isinstance(item, list | tuple)


def _number(item: Scalar) -> float | None:
    if item is None or isinstance(item, str | tuple):
        return None
    number = float(item)
    return number if math.isfinite(number) else None


def _ranked(counts: Counter[str], limit: int) -> list[str]:
    return [v for v, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]


def infer_inputs(
    names: Sequence[str],
    columns: Sequence[Sequence[Scalar]],
    *,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    extra_items: Mapping[str, Sequence[str]] | None = None,
) -> list[signature_pb2.SignatureInput]:
    """The signature inputs of ``names`` from their training values (``columns[j]`` holds input ``j``).

    An input with any list value is a sequence of ``sequence_length`` columns (>= 1); its vocabulary is
    the string elements of its lists plus ``extra_items[name]`` (e.g. the labels a next-item model
    predicts), most frequent first, ties by value, at most ``MAX_SEQUENCE_VOCABULARY``. Otherwise an input
    with any string value is categorical (vocabulary: its strings, most frequent first, ties by value, at
    most ``MAX_VOCABULARY``); otherwise numeric, missing values fed as the mean of the present ones (0.0
    when none is present). ``ValueError`` for a ``sequence_length`` below 1.
    """
    if sequence_length < 1:
        raise ValueError(f"sequence_length {sequence_length} is below 1")
    extra = extra_items or {}
    inputs = []
    for name, column in zip(names, columns, strict=True):
        if any(_is_list(v) for v in column):
            elements: Counter[str] = Counter(extra.get(name, ()))
            for value in column:
                if isinstance(value, list | tuple):
                    elements.update(e for e in value if isinstance(e, str))
            inputs.append(
                signature_pb2.SignatureInput(
                    name=name,
                    kind=signature_pb2.INPUT_KIND_SEQUENCE,
                    vocabulary=_ranked(elements, MAX_SEQUENCE_VOCABULARY),
                    length=sequence_length,
                )
            )
            continue
        strings = Counter(v for v in column if isinstance(v, str))
        if strings:
            inputs.append(
                signature_pb2.SignatureInput(
                    name=name, kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=_ranked(strings, MAX_VOCABULARY)
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
    kind: signature_pb2.InputKind
    index: Mapping[str, int]
    fill: float
    length: int

    @property
    def width(self) -> int:
        return self.length if self.kind == signature_pb2.INPUT_KIND_SEQUENCE else 1


class InputEncoder:
    """Encodes feature values into the input tensor of a signature (see the module doc). Immutable.

    ``width`` is the tensor's column count; ``spans[j]`` the columns input ``j`` takes (one column, or
    ``length`` for a sequence input).
    """

    def __init__(self, inputs: Sequence[signature_pb2.SignatureInput]) -> None:
        self.names = tuple(i.name for i in inputs)
        self._columns = tuple(
            _Column(
                kind=i.kind,
                index={v: k + 1 for k, v in enumerate(i.vocabulary)},
                fill=float(i.missing_value) if i.kind == signature_pb2.INPUT_KIND_NUMERIC else 0.0,
                length=max(int(i.length), 1) if i.kind == signature_pb2.INPUT_KIND_SEQUENCE else 0,
            )
            for i in inputs
        )
        spans = []
        start = 0
        for column in self._columns:
            spans.append(slice(start, start + column.width))
            start += column.width
        self.spans = tuple(spans)
        self.width = start

    def _encode(self, column: _Column, item: Scalar) -> float:
        if column.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
            return float(column.index.get(item, 0)) if isinstance(item, str) else 0.0
        number = _number(item)
        return column.fill if number is None else number

    def _sequence(self, column: _Column, item: Scalar) -> list[float]:
        tail = list(item)[-column.length :] if isinstance(item, list | tuple) else []
        known = [float(column.index.get(e, 0)) if isinstance(e, str) else 0.0 for e in tail]
        return [0.0] * (column.length - len(known)) + known

    def row(self, values: Sequence[Scalar]) -> list[float]:
        """One row of ``width`` columns, ``values[j]`` for input ``j``; ``ValueError`` for a wrong count."""
        if len(values) != len(self._columns):
            raise ValueError(f"{len(values)} values for {len(self._columns)} inputs")
        out: list[float] = []
        for column, value in zip(self._columns, values, strict=True):
            if column.kind == signature_pb2.INPUT_KIND_SEQUENCE:
                out += self._sequence(column, value)
            else:
                out.append(self._encode(column, value))
        return out

    def matrix(self, columns: Sequence[Sequence[Scalar]]) -> NDArray[np.float32]:
        """``[rows, width]`` FP32 from ``columns[j]`` (the values of input ``j``, one per row)."""
        if len(columns) != len(self._columns):
            raise ValueError(f"{len(columns)} columns for {len(self._columns)} inputs")
        rows = len(columns[0]) if columns else 0
        out = np.empty((rows, self.width), dtype=np.float32)
        for column, span, values in zip(self._columns, self.spans, columns, strict=True):
            if column.kind == signature_pb2.INPUT_KIND_SEQUENCE:
                out[:, span] = np.asarray([self._sequence(column, v) for v in values], dtype=np.float32).reshape(
                    rows, column.length
                )
            else:
                out[:, span.start] = [self._encode(column, v) for v in values]
        return out

    def is_missing(self, j: int, item: Scalar) -> bool:
        """True when input ``j`` gets its fill for ``item`` (missing, wrong kind, or unknown category); a
        sequence input only when ``item`` is not a list (an empty list is a known, empty history)."""
        column = self._columns[j]
        if column.kind == signature_pb2.INPUT_KIND_SEQUENCE:
            return not _is_list(item)
        if column.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
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
