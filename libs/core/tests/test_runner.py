"""The service runner drains every part on stop and propagates a crash."""

from __future__ import annotations

import asyncio
import socket

import pytest

from aimesh.core.runner import ServiceRuntime
from aimesh.core.settings import ServiceSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings() -> ServiceSettings:
    return ServiceSettings(admin_port=free_port(), shutdown_grace_seconds=0.5)


async def test_stop_drains_all_parts_then_runs_cleanups() -> None:
    runtime = ServiceRuntime(settings(), "0.1.0")
    events: list[str] = []
    stopped = asyncio.Event()

    async def worker() -> None:
        await stopped.wait()
        events.append("worker returned")

    async def stop_worker() -> None:
        events.append("worker asked to stop")
        stopped.set()

    async def cleanup() -> None:
        events.append("cleanup")

    runtime.add_part("worker", worker, stop_worker)
    runtime.add_cleanup(cleanup)
    task = asyncio.create_task(runtime.run())
    await asyncio.sleep(0.3)
    runtime.request_stop()
    await asyncio.wait_for(task, 5)
    assert events == ["worker asked to stop", "worker returned", "cleanup"]


async def test_part_ignoring_stop_is_cancelled_after_grace(caplog: pytest.LogCaptureFixture) -> None:
    runtime = ServiceRuntime(settings(), "0.1.0")

    async def stubborn() -> None:
        await asyncio.sleep(60)

    async def ignore() -> None:
        return None

    runtime.add_part("stubborn", stubborn, ignore)
    task = asyncio.create_task(runtime.run())
    await asyncio.sleep(0.2)
    runtime.request_stop()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(task, 5)
    assert asyncio.get_running_loop().time() - started < 3.0
    assert "stubborn did not stop within the grace period" in caplog.text


async def test_crash_of_one_part_stops_the_service_and_propagates() -> None:
    runtime = ServiceRuntime(settings(), "0.1.0")

    async def crash() -> None:
        await asyncio.sleep(0.1)
        raise RuntimeError("consumer died")

    async def nothing() -> None:
        return None

    runtime.add_part("crasher", crash, nothing)
    with pytest.raises(ExceptionGroup) as err:
        await asyncio.wait_for(runtime.run(), 5)
    assert "consumer died" in str(err.value.exceptions[0])


async def test_grpc_health_follows_readiness() -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from aimesh.core.grpc_server import GrpcServer

    s = ServiceSettings(admin_port=free_port(), grpc_port=free_port(), readiness_interval_seconds=0.1)
    runtime = ServiceRuntime(s, "0.1.0")
    kafka_up = {"ok": False}

    async def kafka() -> None:
        if not kafka_up["ok"]:
            raise ConnectionError("broker down")

    runtime.probes.readiness["kafka"] = kafka
    runtime.add_grpc(GrpcServer(s, [], ["demo.Service"]))
    task = asyncio.create_task(runtime.run())
    serving = health_pb2.HealthCheckResponse.SERVING

    async def status(channel: grpc.aio.Channel) -> int:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="demo.Service"))
        return int(reply.status)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
        await asyncio.sleep(0.5)
        assert await status(channel) != serving
        kafka_up["ok"] = True
        await asyncio.sleep(0.5)
        assert await status(channel) == serving
        kafka_up["ok"] = False
        await asyncio.sleep(0.5)
        assert await status(channel) != serving
    runtime.request_stop()
    await asyncio.wait_for(task, 5)


async def test_consumer_liveness_fails_only_when_wedged_with_its_dependencies_reachable() -> None:
    from aiokafka import TopicPartition

    from aimesh.core.bus import EventConsumer
    from aimesh.core.events import Event
    from aimesh.core.testing import FakeKafkaConsumer

    s = ServiceSettings(
        admin_port=free_port(),
        shutdown_grace_seconds=0.5,
        liveness_max_stall_seconds=0.5,
        readiness_interval_seconds=0.05,
        consumer_max_attempts=7,
    )
    runtime = ServiceRuntime(s, "0.1.0")
    database = {"up": False}

    async def check_database() -> None:
        if not database["up"]:
            raise ConnectionError("database down")

    entered = asyncio.Event()

    async def hang(event: Event) -> None:
        entered.set()
        await asyncio.Event().wait()  # a call to the database that never returns

    consumer = EventConsumer("127.0.0.1:1", group_id="g", topics=["up"], service="t", handler=hang)
    consumer._consumer = FakeKafkaConsumer([b"v"], batch=1, tp=TopicPartition("up", 0))
    runtime.probes.readiness["database"] = check_database
    runtime.add_consumer(consumer)
    assert consumer.max_attempts == 7, "the runtime applies the service's retry settings"
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.sleep(0.8)
    assert runtime.probes.wedged() == {}, "stuck while its database is down: alive, not restarted"
    database["up"] = True
    await asyncio.sleep(0.2)
    assert runtime.probes.wedged() == {}, (
        "the stall is counted from the database's return: the consumer gets the full stall limit to move again"
    )
    await asyncio.sleep(0.6)
    (reason,) = runtime.probes.wedged().values()
    assert "handler on up/0 at offset 0 has not returned" in reason
    runtime.request_stop()
    await asyncio.wait_for(task, 5)
