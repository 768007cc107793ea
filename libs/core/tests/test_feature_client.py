"""FeatureServiceClient against an in-process FeatureService on loopback: online errors as domain errors,
historical batching and answer checks, readiness, and a quick reconnect after the peer comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from aimesh.core.feature_client import FEATURE_SERVICE_NAME, FeatureServiceClient, HistoricalValues

NAMES = ["v:n", "v:s", "v:b"]


def value(row: int, j: int) -> feature_pb2.FeatureValue:
    """Row ``row``'s feature ``j``: a double, a string, a bool; every third row's string MISSING."""
    fv = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT)
    if j == 0:
        fv.value.double_value = row + 0.5
    elif j == 1:
        if row % 3 == 0:
            return feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING)
        fv.value.string_value = f"s{row}"
    else:
        fv.value.bool_value = row % 2 == 0
    return fv


def expected(row: int) -> list[Any]:
    return [row + 0.5, None if row % 3 == 0 else f"s{row}", row % 2 == 0]


class FakeFeatureService(feature_pb2_grpc.FeatureServiceServicer):
    """Answers historical rows out of order in chunks of 2; ``mode`` breaks the answer on purpose."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.batches: list[int] = []

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        if request.feature_service == "unknown":
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown feature service 'unknown'")
        if request.feature_service == "bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "entity 'account' is missing")
        if request.feature_service == "boom":
            await context.abort(grpc.StatusCode.INTERNAL, "")
        return feature_pb2.GetOnlineFeaturesResponse(feature_names=NAMES)

    async def GetHistoricalFeatures(
        self, request: feature_pb2.GetHistoricalFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[feature_pb2.GetHistoricalFeaturesResponse]:
        if request.feature_service == "unknown":
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown feature service 'unknown'")
        self.batches.append(len(request.entity_rows))
        rows = [
            feature_pb2.HistoricalFeatureRow(
                row_index=i, values=[value(int(r.entity_id), j) for j in range(len(NAMES))]
            )
            for i, r in enumerate(request.entity_rows)
        ]
        rows.reverse()
        if self.mode == "out_of_range":
            rows[0].row_index = len(rows)
        elif self.mode == "short_row":
            del rows[0].values[-1]
        elif self.mode == "unanswered":
            rows.pop()
        elif self.mode == "names_change" and len(self.batches) > 1:
            for row in rows:
                del row.values[-1]
            yield feature_pb2.GetHistoricalFeaturesResponse(feature_names=NAMES[:2], rows=rows)
            return
        for start in range(0, len(rows), 2):
            yield feature_pb2.GetHistoricalFeaturesResponse(
                feature_names=NAMES if start == 0 else [], rows=rows[start : start + 2]
            )


async def start_server(fake: FakeFeatureService, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    feature_pb2_grpc.add_FeatureServiceServicer_to_server(fake, server)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set(FEATURE_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeFeatureService, Callable[..., FeatureServiceClient]]]:
    fake = FakeFeatureService()
    server, port = await start_server(fake)
    clients: list[FeatureServiceClient] = []

    def make(**kwargs: Any) -> FeatureServiceClient:
        client = FeatureServiceClient(f"127.0.0.1:{port}", **kwargs)
        clients.append(client)
        return client

    yield fake, make
    for client in clients:
        await client.close()
    await server.stop(0)


def rows(n: int) -> list[feature_pb2.EntityRow]:
    return [
        feature_pb2.EntityRow(entity_id=str(i), request_context={"amount": common_pb2.Value(double_value=float(i))})
        for i in range(n)
    ]


async def test_historical_batches_and_restores_request_order(served: Any) -> None:
    fake, make = served
    client = make(batch_rows=4)
    got = await client.historical("svc", rows(10))
    assert fake.batches == [4, 4, 2]
    assert got == HistoricalValues(
        names=NAMES, values=[expected(i) for i in range(10)], missing=sum(1 for i in range(10) if i % 3 == 0)
    )


async def test_historical_of_no_rows_makes_no_call(served: Any) -> None:
    fake, make = served
    assert await make().historical("svc", []) == HistoricalValues(names=[], values=[], missing=0)
    assert fake.batches == []


async def test_historical_unknown_feature_service_is_not_found_naming_it(served: Any) -> None:
    _, make = served
    with pytest.raises(NotFound, match=r"feature service: .*'unknown'"):
        await make().historical("unknown", rows(3))


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("out_of_range", "row 3 is out of range"),
        ("short_row", "has 2 values for 3 features"),
        ("unanswered", "answered 2 of 3 rows"),
    ],
)
async def test_historical_answers_that_do_not_fit_are_failed_precondition(served: Any, mode: str, match: str) -> None:
    fake, make = served
    fake.mode = mode
    with pytest.raises(FailedPrecondition, match=match):
        await make().historical("svc", rows(3))


async def test_historical_feature_list_changing_between_batches_is_failed_precondition(served: Any) -> None:
    fake, make = served
    fake.mode = "names_change"
    with pytest.raises(FailedPrecondition, match="changed its feature list between batches"):
        await make(batch_rows=2).historical("svc", rows(4))


async def test_online_passes_the_answer_and_maps_errors(served: Any) -> None:
    _, make = served
    client = make()
    ok = await client.online(feature_pb2.GetOnlineFeaturesRequest(feature_service="svc"), time_left=5.0)
    assert list(ok.feature_names) == NAMES
    with pytest.raises(NotFound, match=r"^feature service: unknown feature service 'unknown'$"):
        await client.online(feature_pb2.GetOnlineFeaturesRequest(feature_service="unknown"), time_left=5.0)
    with pytest.raises(InvalidArgument, match=r"^feature service: entity 'account' is missing$"):
        await client.online(feature_pb2.GetOnlineFeaturesRequest(feature_service="bad"), time_left=None)
    with pytest.raises(Unavailable, match=r"^feature service: INTERNAL$"):
        await client.online(feature_pb2.GetOnlineFeaturesRequest(feature_service="boom"), time_left=5.0)


async def test_check_serving(served: Any, unused_tcp_port: int) -> None:
    _, make = served
    await make().check_serving()
    down = FeatureServiceClient(f"127.0.0.1:{unused_tcp_port}")
    try:
        with pytest.raises(Unavailable, match=f"feature service at 127.0.0.1:{unused_tcp_port}"):
            await down.check_serving()
    finally:
        await down.close()


async def test_reconnects_within_about_a_second_of_the_peer_returning(unused_tcp_port: int) -> None:
    fake = FakeFeatureService()
    server, port = await start_server(fake, unused_tcp_port)
    client = FeatureServiceClient(f"127.0.0.1:{port}")
    request = feature_pb2.GetOnlineFeaturesRequest(feature_service="svc")
    try:
        await client.online(request, time_left=5.0)
        await server.stop(0)
        for _ in range(6):  # 3 s down: gRPC's default backoff would have grown past 2 s by now
            with pytest.raises(Unavailable):
                await client.online(request, time_left=5.0)
            await asyncio.sleep(0.5)
        server, _ = await start_server(fake, port)
        back = time.monotonic()
        while True:
            try:
                await client.online(request, time_left=5.0)
                break
            except Unavailable:
                assert time.monotonic() - back < 3.0, "the channel did not reconnect within 3 s"
                await asyncio.sleep(0.05)
        assert time.monotonic() - back < 1.6
    finally:
        await client.close()
        await server.stop(0)


async def test_close_then_use_opens_a_new_channel(served: Any) -> None:
    _, make = served
    client = make()
    await client.close()
    await client.close()
    assert list((await client.online(feature_pb2.GetOnlineFeaturesRequest(), time_left=5.0)).feature_names) == NAMES
