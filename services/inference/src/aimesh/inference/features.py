"""Online features for one request, from the feature service (``FeatureService.GetOnlineFeatures``).

``GrpcFeatureSource`` holds one long-lived ``grpc.aio`` channel. Each lookup sends one entity row (the
request's entity ids, its context and the as-of time) under the caller's remaining deadline. Status codes
of the feature service come back as the matching domain error (``InvalidArgument`` for a missing entity,
``NotFound``, ``DeadlineExceeded`` ...), their message prefixed with ``feature service:``; a feature
service that cannot be reached is ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.errors import (
    AimeshError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)

FEATURE_SERVICE_NAME = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"].full_name
_ERRORS: dict[grpc.StatusCode, type[AimeshError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


@dataclass(frozen=True, slots=True)
class OnlineFeatures:
    """Numeric feature values by reference, what had no usable value, and the newest event time seen."""

    values: dict[str, float] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    newest_event_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class FeatureLookup:
    """One request's online lookup: the feature service, the entity ids and context, the as-of time."""

    feature_service: str
    entity_ids: Mapping[str, str]
    context: Mapping[str, common_pb2.Value]
    as_of: datetime

    def to_request(self) -> feature_pb2.GetOnlineFeaturesRequest:
        """The ``GetOnlineFeaturesRequest`` of this lookup: one entity row."""
        stamp = Timestamp()
        stamp.FromDatetime(self.as_of)
        row = feature_pb2.EntityRow(entity_ids=dict(self.entity_ids), timestamp=stamp)
        for key, value in self.context.items():
            row.request_context[key].CopyFrom(value)
        return feature_pb2.GetOnlineFeaturesRequest(feature_service=self.feature_service, entity_rows=[row])


class FeatureSource(Protocol):
    """Where the scorer gets online features (the feature service, or a fake in tests)."""

    async def online_features(self, lookup: FeatureLookup, *, time_left: float | None) -> OnlineFeatures: ...


def numeric(value: common_pb2.Value) -> float | None:
    """A feature value as a float (bools as 0/1); None for null and strings."""
    kind = value.WhichOneof("kind")
    if kind == "double_value":
        return value.double_value
    if kind == "int64_value":
        return float(value.int64_value)
    if kind == "bool_value":
        return 1.0 if value.bool_value else 0.0
    return None


def parse_online_response(response: feature_pb2.GetOnlineFeaturesResponse) -> OnlineFeatures:
    """Row 0 of the response as ``OnlineFeatures``: MISSING, EXPIRED and non-numeric values are missing."""
    if not response.rows:
        return OnlineFeatures(missing=tuple(response.feature_names))
    values: dict[str, float] = {}
    missing: list[str] = []
    newest: datetime | None = None
    for name, fv in zip(response.feature_names, response.rows[0].values, strict=False):
        number = numeric(fv.value) if fv.status == feature_pb2.FEATURE_STATUS_PRESENT else None
        if number is None:
            missing.append(name)
            continue
        values[name] = number
        if fv.HasField("event_time"):
            seen = fv.event_time.ToDatetime(tzinfo=UTC)
            newest = seen if newest is None or seen > newest else newest
    return OnlineFeatures(values, tuple(missing), newest)


class GrpcFeatureSource:
    """``FeatureSource`` over gRPC; ``close()`` releases the channel."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = feature_pb2_grpc.FeatureServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def online_features(self, lookup: FeatureLookup, *, time_left: float | None) -> OnlineFeatures:
        """One lookup; blocks at most ``time_left`` seconds; raises domain errors (see the module doc)."""
        request = lookup.to_request()
        try:
            response = await self._stub.GetOnlineFeatures(request, timeout=time_left)
        except grpc.aio.AioRpcError as exc:
            error = _ERRORS.get(exc.code(), Unavailable)
            raise error(f"feature service: {exc.details() or exc.code().name}") from exc
        return parse_online_response(response)

    async def check_serving(self) -> None:
        """Readiness: the feature service's grpc.health.v1 reports SERVING; raises ``Unavailable`` otherwise."""
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(service=FEATURE_SERVICE_NAME), timeout=2.0)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"feature service at {self.address}: {exc.code().name} {exc.details()}") from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unavailable(f"feature service at {self.address} is not serving")

    async def close(self) -> None:
        await self._channel.close()
