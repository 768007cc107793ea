"""Online features for one request, from the feature service (``FeatureService.GetOnlineFeatures``).

``ServiceFeatureSource`` adapts the shared ``aimesh.core.feature_client.FeatureServiceClient`` (one
long-lived channel) to the scorer's ``FeatureSource``: a call sends one entity row per lookup (the
request's entity ids, its context and the as-of time) in one request, under the caller's remaining
deadline. The feature
service's status codes come back as the matching domain error (``InvalidArgument`` for a missing
entity, ``NotFound``, ``DeadlineExceeded`` ...), prefixed with ``feature service:``; a feature service
that cannot be reached is ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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

    def entity_row(self) -> feature_pb2.EntityRow:
        """The ``EntityRow`` of this lookup: its entity ids, the as-of time and the context."""
        stamp = Timestamp()
        stamp.FromDatetime(self.as_of)
        row = feature_pb2.EntityRow(entity_ids=dict(self.entity_ids), timestamp=stamp)
        for key, value in self.context.items():
            row.request_context[key].CopyFrom(value)
        return row


def lookup_request(lookups: Sequence[FeatureLookup]) -> feature_pb2.GetOnlineFeaturesRequest:
    """One ``GetOnlineFeaturesRequest`` for ``lookups`` (one entity row each, in order); they must name one
    feature service (``ValueError`` otherwise, or when there is none)."""
    services = {lookup.feature_service for lookup in lookups}
    if len(services) != 1:
        raise ValueError(f"one feature service per request, got {sorted(services)}")
    return feature_pb2.GetOnlineFeaturesRequest(
        feature_service=lookups[0].feature_service, entity_rows=[lookup.entity_row() for lookup in lookups]
    )


class FeatureSource(Protocol):
    """Where the scorer gets online features (the feature service, or a fake in tests)."""

    async def online_features(
        self, lookups: Sequence[FeatureLookup], *, time_left: float | None
    ) -> list[OnlineFeatures]:
        """One ``OnlineFeatures`` per lookup, in order, from one call; every lookup names the same feature
        service."""
        ...


def parse_online_response(response: feature_pb2.GetOnlineFeaturesResponse, row: int = 0) -> OnlineFeatures:
    """Row ``row`` of the response as ``OnlineFeatures`` (no such row: every feature missing)."""
    if len(response.rows) <= row:
        return OnlineFeatures(missing=tuple(response.feature_names))
    values: dict[str, Scalar] = {}
    missing: list[str] = []
    times: dict[str, datetime] = {}
    for name, fv in zip(response.feature_names, response.rows[row].values, strict=False):
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

    async def online_features(
        self, lookups: Sequence[FeatureLookup], *, time_left: float | None
    ) -> list[OnlineFeatures]:
        """The lookups as one request; blocks at most ``time_left`` seconds; raises domain errors (see the
        module doc)."""
        response = await self.client.online(lookup_request(lookups), time_left=time_left)
        return [parse_online_response(response, j) for j in range(len(lookups))]

    async def check_serving(self) -> None:
        """Readiness: the feature service reports SERVING; raises ``Unavailable`` otherwise."""
        await self.client.check_serving()

    async def close(self) -> None:
        await self.client.close()
