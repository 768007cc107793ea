"""The FeatureService gRPC adapter: thin methods over ``retrieval`` and the definitions
(``definitions.store``, ``definitions.wire``).

Domain errors raised below become status codes in ``aimesh.core.grpc_server``'s interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions.specs import FeatureRepo
from aimesh.feature.definitions.store import VIEW, ApplyOutcome
from aimesh.feature.definitions.wire import change_to_proto, repo_from_request, view_to_proto
from aimesh.feature.serving.retrieval import HistoricalRetrieval, OnlineRetrieval

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

Applier = Callable[[FeatureRepo, bool], Awaitable[ApplyOutcome]]
"""Applies definitions (dry run or not), swapping the served registry and scheduling backfills."""


class FeatureServiceApi(feature_pb2_grpc.FeatureServiceServicer):
    """FeatureService over the online store, the lake and the definitions registry."""

    def __init__(self, online: OnlineRetrieval, historical: HistoricalRetrieval, apply: Applier) -> None:
        self.online = online
        self.historical = historical
        self.apply = apply

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        return await self.online.get(request)

    async def GetHistoricalFeatures(  # type: ignore[override]
        self, request: feature_pb2.GetHistoricalFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[feature_pb2.GetHistoricalFeaturesResponse]:
        async for chunk in self.historical.stream(request):
            yield chunk

    async def ApplyDefinitions(
        self, request: feature_pb2.ApplyDefinitionsRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.ApplyDefinitionsResponse:
        """Validate, diff and store (unless dry_run); see ``definitions.store`` for what is refused and
        how concurrent applies are serialised."""
        outcome = await self.apply(repo_from_request(request), request.dry_run)
        return feature_pb2.ApplyDefinitionsResponse(changes=[change_to_proto(c) for c in outcome.changes])

    async def ListFeatureViews(
        self, request: feature_pb2.ListFeatureViewsRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.ListFeatureViewsResponse:
        """Views ordered by name, optionally of one entity; the page token is the last name returned."""
        size = request.page.page_size or DEFAULT_PAGE_SIZE
        if size < 0:
            raise InvalidArgument("page.page_size must not be negative")
        size = min(size, MAX_PAGE_SIZE)
        registry = self.online.registry.current
        views = sorted(
            (v for v in registry.views.values() if not request.entity or v.entity == request.entity),
            key=lambda v: v.name,
        )
        after = request.page.page_token
        page = [v for v in views if v.name > after][:size] if after else views[:size]
        more = bool(page) and page[-1].name != views[-1].name
        return feature_pb2.ListFeatureViewsResponse(
            feature_views=[view_to_proto(v, registry.versions.get((VIEW, v.name), 1)) for v in page],
            page=common_pb2.PageResponse(next_page_token=page[-1].name if more else ""),
        )
