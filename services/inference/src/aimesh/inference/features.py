"""Online features for one request, from the feature service (``FeatureService.GetOnlineFeatures``).

``ServiceFeatureSource`` adapts the shared ``aimesh.core.feature_client.FeatureServiceClient`` (one
long-lived channel) to the scorer's ``FeatureSource``: each lookup sends one entity row (the request's
entity ids, its context and the as-of time) under the caller's remaining deadline. The feature
service's status codes come back as the matching domain error (``InvalidArgument`` for a missing
entity, ``NotFound``, ``DeadlineExceeded`` ...), prefixed with ``feature service:``; a feature service
that cannot be reached is ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.feature_client import FeatureServiceClient
from aimesh.core.signature import Scalar, scalar


@dataclass(frozen=True, slots=True)
class OnlineFeatures:
    """One row's usable values by feature reference, and the event time behind each.

    ``values`` holds PRESENT, non-null values only (numbers, strings, bools as the feature service typed
    them); ``missing`` names the others (MISSING, EXPIRED, null); ``event_times`` the event time of each
    value in ``values`` that carries one.
    """

    values: dict[str, Scalar] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    event_times: dict[str, datetime] = field(default_factory=dict)

    def freshness(self, now: datetime, names: Iterable[str]) -> float:
        """Seconds from the newest event time among ``names``' values to ``now`` (never negative); 0.0 when
        none of them carries one."""
        times = [self.event_times[name] for name in names if name in self.event_times]
        return max((now - max(times)).total_seconds(), 0.0) if times else 0.0


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


def parse_online_response(response: feature_pb2.GetOnlineFeaturesResponse) -> OnlineFeatures:
    """Row 0 of the response as ``OnlineFeatures`` (no row: every feature missing)."""
    if not response.rows:
        return OnlineFeatures(missing=tuple(response.feature_names))
    values: dict[str, Scalar] = {}
    missing: list[str] = []
    times: dict[str, datetime] = {}
    for name, fv in zip(response.feature_names, response.rows[0].values, strict=False):
        item = scalar(fv.value) if fv.status == feature_pb2.FEATURE_STATUS_PRESENT else None
        if item is None:
            missing.append(name)
            continue
        values[name] = item
        if fv.HasField("event_time"):
            times[name] = fv.event_time.ToDatetime(tzinfo=UTC)
    return OnlineFeatures(values, tuple(missing), times)


class ServiceFeatureSource:
    """``FeatureSource`` over the feature service's gRPC API; ``close()`` releases the channel."""

    def __init__(self, client: FeatureServiceClient) -> None:
        self.client = client

    async def online_features(self, lookup: FeatureLookup, *, time_left: float | None) -> OnlineFeatures:
        """One lookup; blocks at most ``time_left`` seconds; raises domain errors (see the module doc)."""
        return parse_online_response(await self.client.online(lookup.to_request(), time_left=time_left))

    async def check_serving(self) -> None:
        """Readiness: the feature service reports SERVING; raises ``Unavailable`` otherwise."""
        await self.client.check_serving()

    async def close(self) -> None:
        await self.client.close()
