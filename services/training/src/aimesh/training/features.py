"""Point-in-time features of training rows, through the shared feature-service client.

``FeatureClient`` is the part of ``aimesh.core.feature_client.FeatureServiceClient`` the run pipeline
uses (unit tests give an in-memory fake). ``entity_rows`` turns training rows into the same requests a
caller's ``Score`` makes: entity ids, the row's time, its context fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.feature_client import HistoricalValues
from aimesh.core.signature import to_value
from aimesh.training.dataset import Rows

FEATURE_SERVICE_CHECK_SECONDS = 10.0


class FeatureClient(Protocol):
    """What training needs of the feature service."""

    async def historical(self, feature_service: str, rows: Sequence[feature_pb2.EntityRow]) -> HistoricalValues:
        """Values of every row, in order; ``NotFound``, ``Unavailable`` or ``FailedPrecondition``."""
        ...

    async def online(
        self, request: feature_pb2.GetOnlineFeaturesRequest, *, time_left: float | None
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        """One online lookup (used with no rows to check that a feature service exists)."""
        ...


async def check_feature_service(client: FeatureClient, feature_service: str) -> None:
    """Raise ``NotFound`` when ``feature_service`` does not exist (``Unavailable`` when the service is down).

    Asks ``GetOnlineFeatures`` with no rows: the feature service resolves the name first (NOT_FOUND), then
    refuses the empty request (INVALID_ARGUMENT), which proves the name exists.
    """
    request = feature_pb2.GetOnlineFeaturesRequest(feature_service=feature_service)
    try:
        await client.online(request, time_left=FEATURE_SERVICE_CHECK_SECONDS)
    except InvalidArgument:
        return


def _context_value(item: object, value_type: common_pb2.ValueType) -> common_pb2.Value:
    if item is None:
        return common_pb2.Value()
    if value_type == common_pb2.VALUE_TYPE_DOUBLE and isinstance(item, int | float) and not isinstance(item, bool):
        return common_pb2.Value(double_value=float(item))
    return to_value(item if isinstance(item, str | bool | int | float) else str(item))


def entity_rows(rows: Rows) -> list[feature_pb2.EntityRow]:
    """One ``EntityRow`` per training row: its entity ids, as of its time, its context (numbers as doubles,
    as callers send them to ``Score``)."""
    out = []
    for at, ids, context in zip(rows.times, rows.entity_ids, rows.context, strict=True):
        stamp = Timestamp()
        stamp.FromDatetime(at)
        out.append(
            feature_pb2.EntityRow(
                timestamp=stamp,
                entity_ids=ids,
                request_context={k: _context_value(v, rows.context_types[k]) for k, v in context.items()},
            )
        )
    return out
