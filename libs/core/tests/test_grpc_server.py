"""The gRPC server builder on loopback: error mapping, deadlines, health, reflection, TLS off by default,
request checks (invalid Timestamps and enum numbers) before the handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy.exc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.monitor.v1 import events_pb2 as monitor_events_pb2
from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.core.errors import InvalidArgument, NotFound
from aimesh.core.grpc_server import GrpcServer, bounded_details
from aimesh.core.settings import ServiceSettings

SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


class FakeScoring(inference_pb2_grpc.InferenceServiceServicer):
    async def Score(self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext) -> object:
        if request.request_id == "missing":
            raise NotFound("model 'fraud' has no alias 'champion'")
        if request.request_id == "bad":
            raise InvalidArgument("request_id: must not be 'bad'")
        if request.request_id == "slow":
            await asyncio.sleep(5)
        if request.request_id == "boom":
            raise RuntimeError("secret internals")
        if request.request_id == "db-down":
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("secret host:5432"))
        if request.request_id.startswith("echo:"):
            raise InvalidArgument(f"request_id {request.request_id!r} is not allowed")
        return inference_pb2.ScoreResponse(request_id=request.request_id, score=0.25)


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    settings = ServiceSettings(grpc_port=0, shutdown_grace_seconds=1)
    server = GrpcServer(
        settings, [lambda s: inference_pb2_grpc.add_InferenceServiceServicer_to_server(FakeScoring(), s)], [SERVICE]
    )
    task = asyncio.create_task(server.serve())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        await asyncio.wait_for(ch.channel_ready(), 5)
        yield ch
    await server.stop()
    await task


async def score(channel: grpc.aio.Channel, request_id: str, timeout: float = 5) -> inference_pb2.ScoreResponse:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    return await stub.Score(inference_pb2.ScoreRequest(request_id=request_id), timeout=timeout)


async def test_ok_and_domain_errors_map_to_status_codes(channel: grpc.aio.Channel) -> None:
    assert (await score(channel, "r1")).score == 0.25
    with pytest.raises(grpc.aio.AioRpcError) as nf:
        await score(channel, "missing")
    assert nf.value.code() == grpc.StatusCode.NOT_FOUND
    assert "champion" in (nf.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as ia:
        await score(channel, "bad")
    assert ia.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unexpected_errors_are_internal_without_leaking_details(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await score(channel, "boom")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "")
    assert "trace id" in (err.value.details() or "")


async def test_a_dependency_that_is_down_is_unavailable_not_internal(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await score(channel, "db-down")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    details = err.value.details() or ""
    assert "is unavailable (OperationalError); retry (trace id" in details
    assert "secret" not in details
    assert not any(r.exc_info for r in caplog.records), "no stack trace for a dependency being down"


async def test_deadline_is_honoured(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await score(channel, "slow", timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_health_and_reflection(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    reply = await call.read()
    await call.done_writing()
    names = {s.name for s in reply.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


class FakeMonitor(monitor_pb2_grpc.MonitorServiceServicer):
    """A handler that trusts its request, as the real ones did: ``ToDatetime`` and ``AlertKind.Name``."""

    async def ListAlerts(self, request: monitor_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext) -> object:
        request.since.ToDatetime()
        monitor_events_pb2.AlertKind.Name(request.kind)
        return monitor_pb2.ListAlertsResponse()


async def test_invalid_timestamps_and_enum_numbers_are_invalid_argument_before_the_handler() -> None:
    settings = ServiceSettings(grpc_port=0, shutdown_grace_seconds=1)
    server = GrpcServer(
        settings,
        [lambda s: monitor_pb2_grpc.add_MonitorServiceServicer_to_server(FakeMonitor(), s)],
        [monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].full_name],
    )
    task = asyncio.create_task(server.serve())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = monitor_pb2_grpc.MonitorServiceStub(ch)
            await stub.ListAlerts(monitor_pb2.ListAlertsRequest(kind=1), timeout=5)
            bad_time = monitor_pb2.ListAlertsRequest()
            bad_time.since.nanos = -1
            bad_kind = monitor_pb2.ListAlertsRequest(kind=-1)  # type: ignore[arg-type]
            for request, field in ((bad_time, "since"), (bad_kind, "kind")):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ListAlerts(request, timeout=5)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
                assert (err.value.details() or "").startswith(f"{field} is ")
    finally:
        await server.stop()
        await task


@pytest.mark.parametrize("value", ["x" * 10_000, "é" * 5_000, "x" * (1 << 20)])
async def test_a_message_echoing_a_huge_field_is_cut_not_a_lost_stream(channel: grpc.aio.Channel, value: str) -> None:
    """Before the cut, 10 KB of details exceeded gRPC's 8 KiB metadata limit: RESOURCE_EXHAUSTED "Stream removed"."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await score(channel, f"echo:{value}")
    details = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith("request_id 'echo:") and "more characters)" in details
    assert len(details) < len(value)


def test_bounded_details_keeps_short_messages_and_cuts_by_encoded_size() -> None:
    assert bounded_details("model 'm' has no alias") == "model 'm' has no alias"
    assert bounded_details("a" * 2048) == "a" * 2048
    assert bounded_details("a" * 2049) == "a" * 2048 + "... (1 more characters)"
    assert bounded_details("é" * 1000).startswith("é" * 341 + "... (659 more")
