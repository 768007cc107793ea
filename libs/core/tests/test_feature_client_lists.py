"""List values (``last_n`` features) through FeatureServiceClient: each becomes a tuple of scalars, an empty
list an empty tuple (PRESENT, so not counted missing), a MISSING one None."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.feature_client import FeatureServiceClient, HistoricalValues
from aimesh.core.signature import to_value

from .test_feature_client import FakeFeatureService, start_server

LISTS = [("a", "b"), (), (1.5, 2.0), None]


class ListFeatureService(FakeFeatureService):
    """Row ``i`` holds ``LISTS[i % 4]`` (None: MISSING)."""

    async def GetHistoricalFeatures(
        self, request: feature_pb2.GetHistoricalFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[feature_pb2.GetHistoricalFeaturesResponse]:
        rows = []
        for i, _ in enumerate(request.entity_rows):
            item = LISTS[i % 4]
            fv = (
                feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING)
                if item is None
                else feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT, value=to_value(item))
            )
            rows.append(feature_pb2.HistoricalFeatureRow(row_index=i, values=[fv]))
        yield feature_pb2.GetHistoricalFeaturesResponse(feature_names=["v:recent"], rows=rows)


async def test_list_values_come_back_as_tuples() -> None:
    server, port = await start_server(ListFeatureService())
    client = FeatureServiceClient(f"127.0.0.1:{port}")
    try:
        rows = [feature_pb2.EntityRow(entity_id=str(i)) for i in range(8)]
        got = await client.historical("svc", rows)
        assert got == HistoricalValues(names=["v:recent"], values=[[LISTS[i % 4]] for i in range(8)], missing=2)
        assert to_value(()).WhichOneof("kind") == "list_value"  # an empty list is a value, not null
        assert isinstance(to_value(("a",)).list_value, common_pb2.ValueList)
    finally:
        await client.close()
        await server.stop(0)
