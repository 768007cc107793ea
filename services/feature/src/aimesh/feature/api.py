"""The FeatureService gRPC adapter: thin methods over ``retrieval`` and ``definitions``.

Domain errors raised below become status codes in ``aimesh.core.grpc_server``'s interceptor.
ApplyDefinitions is not implemented yet (definitions are fixed in ``definitions.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions import REGISTRY, Registry, view_to_proto
from aimesh.feature.retrieval import HistoricalRetrieval, OnlineRetrieval

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class FeatureServiceApi(feature_pb2_grpc.FeatureServiceServicer):
    """FeatureService over the online store and the lake; methods not overridden answer UNIMPLEMENTED."""

    def __init__(self, online: OnlineRetrieval, historical: HistoricalRetrieval, registry: Registry = REGISTRY) -> None:
        self.online = online
        self.historical = historical
        self.registry = registry

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        return await self.online.get(request)

    async def GetHistoricalFeatures(  # type: ignore[override]
        self, request: feature_pb2.GetHistoricalFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[feature_pb2.GetHistoricalFeaturesResponse]:
        async for chunk in self.historical.stream(request):
            yield chunk

    async def ListFeatureViews(
        self, request: feature_pb2.ListFeatureViewsRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.ListFeatureViewsResponse:
        """Views ordered by name, optionally of one entity; the page token is the last name returned."""
        size = request.page.page_size or DEFAULT_PAGE_SIZE
        if size < 0:
            raise InvalidArgument("page.page_size must not be negative")
        size = min(size, MAX_PAGE_SIZE)
        views = sorted(
            (v for v in self.registry.views if not request.entity or v.entity == request.entity), key=lambda v: v.name
        )
        after = request.page.page_token
        page = [v for v in views if v.name > after][:size] if after else views[:size]
        more = bool(page) and page[-1].name != views[-1].name
        return feature_pb2.ListFeatureViewsResponse(
            feature_views=[view_to_proto(v) for v in page],
            page=common_pb2.PageResponse(next_page_token=page[-1].name if more else ""),
        )
