"""Point-in-time feature vectors for training, behind a small interface.

``FeatureClient`` is what the run pipeline needs; ``GrpcFeatureClient`` implements it over
``FeatureService.GetHistoricalFeatures`` (the feature service's contract, see docs/scenario-fraud.md).
Unit tests use an in-memory fake of the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from numpy.typing import NDArray

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.errors import FailedPrecondition, NotFound, Unavailable


@dataclass(frozen=True)
class PaymentRow:
    """One payment to compute features for: its entities, its time and its request context."""

    card_id: str
    customer_id: str
    time: datetime
    amount: float
    merchant_id: str
    merchant_category: str
    country: str
    device_id: str


@dataclass(frozen=True)
class FeatureMatrix:
    """Feature values ``[rows, features]`` in request row order, and the feature references in column order."""

    names: list[str]
    values: NDArray[np.float32]
    missing: int
    """Values the service reported MISSING (filled with 0.0)."""


class FeatureClient(Protocol):
    """Computes point-in-time features for payments."""

    async def historical(self, feature_service: str, rows: Sequence[PaymentRow]) -> FeatureMatrix:
        """Features of every row, in order. Raises ``NotFound`` (unknown feature service), ``Unavailable``
        (service down) or ``FailedPrecondition`` (a malformed answer)."""
        ...


def entity_row(row: PaymentRow) -> feature_pb2.EntityRow:
    """The EntityRow for one payment: entities card + customer, as-of its time, its request context."""
    ts = Timestamp()
    ts.FromDatetime(row.time)
    return feature_pb2.EntityRow(
        timestamp=ts,
        entity_ids={"card": row.card_id, "customer": row.customer_id},
        request_context={
            "amount": common_pb2.Value(double_value=row.amount),
            "merchant_id": common_pb2.Value(string_value=row.merchant_id),
            "merchant_category": common_pb2.Value(string_value=row.merchant_category),
            "country": common_pb2.Value(string_value=row.country),
            "device_id": common_pb2.Value(string_value=row.device_id),
        },
    )


def numeric(value: common_pb2.Value) -> float | None:
    """A feature value as a float (bools as 0/1); None when null or a string."""
    kind = value.WhichOneof("kind")
    if kind == "double_value":
        return float(value.double_value)
    if kind == "int64_value":
        return float(value.int64_value)
    if kind == "bool_value":
        return 1.0 if value.bool_value else 0.0
    return None


class GrpcFeatureClient:
    """``FeatureClient`` over gRPC: sends ``batch_rows`` entity rows per call, each call with ``timeout_s``."""

    def __init__(self, target: str, *, batch_rows: int = 2000, timeout_s: float = 120.0) -> None:
        self._target = target
        self._batch_rows = batch_rows
        self._timeout_s = timeout_s

    async def historical(self, feature_service: str, rows: Sequence[PaymentRow]) -> FeatureMatrix:
        names: list[str] = []
        out = np.zeros((len(rows), 0), dtype=np.float32)
        missing = 0
        async with grpc.aio.insecure_channel(self._target) as channel:
            stub = feature_pb2_grpc.FeatureServiceStub(channel)
            for start in range(0, len(rows), self._batch_rows):
                batch = rows[start : start + self._batch_rows]
                request = feature_pb2.GetHistoricalFeaturesRequest(
                    feature_service=feature_service, entity_rows=[entity_row(r) for r in batch]
                )
                try:
                    batch_names, values, batch_missing = await self._call(stub, request, len(batch))
                except grpc.aio.AioRpcError as exc:
                    raise _domain_error(self._target, feature_service, exc) from exc
                if not names:
                    names = batch_names
                    out = np.zeros((len(rows), len(names)), dtype=np.float32)
                elif batch_names != names:
                    raise FailedPrecondition("the feature service changed its feature list between batches")
                out[start : start + len(batch)] = values
                missing += batch_missing
        return FeatureMatrix(names=names, values=out, missing=missing)

    async def _call(
        self, stub: feature_pb2_grpc.FeatureServiceStub, request: feature_pb2.GetHistoricalFeaturesRequest, n: int
    ) -> tuple[list[str], NDArray[np.float32], int]:
        names: list[str] = []
        values: NDArray[np.float32] | None = None
        seen = np.zeros(n, dtype=bool)
        missing = 0
        async for chunk in stub.GetHistoricalFeatures(request, timeout=self._timeout_s):
            if chunk.feature_names:
                names = list(chunk.feature_names)
                values = np.zeros((n, len(names)), dtype=np.float32)
            if values is None:
                raise FailedPrecondition("GetHistoricalFeatures sent rows before feature_names")
            for row in chunk.rows:
                if not 0 <= row.row_index < n or len(row.values) != len(names):
                    raise FailedPrecondition(
                        f"GetHistoricalFeatures row {row.row_index} is out of range or has "
                        f"{len(row.values)} values for {len(names)} features"
                    )
                for j, fv in enumerate(row.values):
                    number = numeric(fv.value)
                    if number is None:
                        missing += 1
                        number = 0.0
                    values[row.row_index, j] = number
                seen[row.row_index] = True
        if values is None or not seen.all():
            raise FailedPrecondition(f"GetHistoricalFeatures answered {int(seen.sum())} of {n} rows")
        return names, values, missing


def _domain_error(target: str, feature_service: str, exc: grpc.aio.AioRpcError) -> Exception:
    code = exc.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"feature service {feature_service!r}: {exc.details()}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"feature service at {target} is unavailable ({code.name}: {exc.details()})")
    return FailedPrecondition(f"GetHistoricalFeatures failed ({code.name}: {exc.details()})")
