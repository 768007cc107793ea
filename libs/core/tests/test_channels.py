"""Client channels from ``aimesh.core.channels`` reconnect within about a second of their peer's return.

A real ``grpc.aio`` server on loopback (grpc.health.v1 only) is stopped, kept down long enough for
gRPC's default backoff to have grown far past a second (1 s, 1.6 s, 2.6 s, 4.1 s, 6.6 s ... up to 120 s),
and started again on the same port; the test measures how long until a call on the SAME channel succeeds.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aimesh.core.channels import MAX_RECONNECT_BACKOFF_MS, channel_options, open_channel


async def start_health_server(port: int) -> grpc.aio.Server:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    await server.start()
    return server


async def seconds_until_answered(stub: health_pb2_grpc.HealthStub, limit_s: float) -> float:
    back = time.monotonic()
    while True:
        try:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            return time.monotonic() - back
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc
            assert time.monotonic() - back < limit_s, f"no answer within {limit_s}s of the peer's return"
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("down_s", [3.0, 12.0])
async def test_a_channel_reconnects_within_about_a_second_of_the_peer_returning(
    unused_tcp_port: int, down_s: float
) -> None:
    server = await start_health_server(unused_tcp_port)
    channel = open_channel(f"127.0.0.1:{unused_tcp_port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5.0)
        await server.stop(0)
        deadline = time.monotonic() + down_s
        while time.monotonic() < deadline:  # calls while down fail at once, they do not wait
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as down:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=5.0)
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 0.5
            await asyncio.sleep(0.25)
        server = await start_health_server(unused_tcp_port)
        took = await seconds_until_answered(stub, limit_s=5.0)
        print(f"reconnected {took:.2f} s after the peer's return (down {down_s:.0f} s)")
        assert took < 2.0
    finally:
        await channel.close()
        await server.stop(0)


def test_the_options_bound_the_backoff_and_enable_keepalive_only_with_calls() -> None:
    options = dict(channel_options(max_message_bytes=1024))
    assert options["grpc.max_reconnect_backoff_ms"] == MAX_RECONNECT_BACKOFF_MS <= 1000
    assert options["grpc.initial_reconnect_backoff_ms"] <= MAX_RECONNECT_BACKOFF_MS
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.max_receive_message_length"] == options["grpc.max_send_message_length"] == 1024
