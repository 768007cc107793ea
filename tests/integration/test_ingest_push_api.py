"""IngestService.Publish against real Kafka, through a real gRPC server.

A batch of valid and invalid records gets per-record answers; the valid ones reach the upstream topic
and, once the ingest consumer (in-process, isolated topics) handled them, the canonical topic exactly
once; the invalid ones are on the DLQ with their reasons. Limits and unknown sources answer the
documented status codes, and a service whose Kafka is unreachable answers UNAVAILABLE.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from prometheus_client import REGISTRY

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.core.bus import EventProducer
from aimesh.core.channels import open_caller_channel
from aimesh.core.events import Event
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.scan import TopicScan
from aimesh.core.sql import create_engine, migrate
from aimesh.core.testing import run_until
from aimesh.ingest.access import ACCESS
from aimesh.ingest.app import (
    MIGRATIONS,
    SERVICE_NAME,
    build_api,
    build_consumer,
    build_pipeline,
    open_catalog,
    open_registry,
)
from aimesh.ingest.settings import IngestSettings
from tests.integration.ingest_sources import BANKING_SOURCES, ingest_catalog

pytestmark = pytest.mark.integration

PAN = "4111111111111111"


def payment(event_id: str, **changes: Any) -> ingest_pb2.Record:
    record = {
        "transaction_id": event_id,
        "card_id": f"card-{event_id}",
        "card_number": PAN,
        "customer_id": "cust-1",
        "merchant_id": "m-1",
        "merchant_category": "grocery",
        "amount": 12.5,
        "device_id": "d-1",
        "timestamp": "2025-01-01T10:00:00+00:00",
    }
    return ingest_pb2.Record(payload=orjson.dumps(record | changes))


async def scan(bootstrap: str, topic: str) -> list[Event]:
    async with TopicScan(bootstrap, topic) as records:
        return [event async for event in records]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_api(
    settings: IngestSettings, producer: EventProducer
) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    engine = create_engine(settings.sqlalchemy_url())
    await migrate(engine, MIGRATIONS)
    registry = await open_registry(settings, engine)
    api = build_api(settings, registry, await open_catalog(settings, registry), producer)
    server = GrpcServer(
        settings, [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(api, s)], [SERVICE_NAME], access=ACCESS
    )
    await server.server.start()
    try:
        async with open_caller_channel(f"127.0.0.1:{server.port}") as channel:
            yield ingest_pb2_grpc.IngestServiceStub(channel)
    finally:
        await server.server.stop(0)
        await engine.dispose()


@pytest.fixture
async def settings(endpoints, make_topic, unique, tmp_path: Path) -> IngestSettings:  # type: ignore[no-untyped-def]
    return IngestSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        consumer_group=f"ingest-push-{unique}",
        sources_file=BANKING_SOURCES,
        source_topics={"card_transactions": await make_topic("push-tx"), "chargebacks": await make_topic("push-cb")},
        records_topic=await make_topic("push-records"),
        dlq_topic=await make_topic("push-dlq", partitions=1),
        data_dir=tmp_path,
        grpc_port=0,
        push_max_records=20,
        push_max_record_bytes=2048,
        push_ack_timeout_seconds=3.0,
    )


async def test_publish_answers_per_record_and_the_valid_ones_reach_the_canonical_topic_once(
    settings: IngestSettings,
) -> None:
    bootstrap, tx_topic = settings.kafka_bootstrap, settings.source_topics["card_transactions"]
    records = [payment(f"p{i}") for i in range(5)] + [
        payment("bad-amount", amount=-3),
        ingest_pb2.Record(payload=b"{truncated"),
        payment("bad-category", merchant_category="casino"),
    ]
    async with EventProducer(bootstrap, source="ingest") as producer:
        async for stub in serve_api(settings, producer):
            response = await stub.Publish(
                ingest_pb2.PublishRequest(source="card_transactions", records=records), timeout=10
            )
            retried = await stub.Publish(
                ingest_pb2.PublishRequest(source="card_transactions", records=records[:2]), timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as too_many:
                await stub.Publish(ingest_pb2.PublishRequest(source="card_transactions", records=records * 3))
            with pytest.raises(grpc.aio.AioRpcError) as too_big:
                big = ingest_pb2.Record(payload=b" " * 4096)
                await stub.Publish(ingest_pb2.PublishRequest(source="card_transactions", records=[big]))
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await stub.Publish(ingest_pb2.PublishRequest(source="loans", records=records[:1]))

        assert (response.accepted_count, response.rejected_count) == (5, 3) and retried.accepted_count == 2
        statuses = [
            (r.index, r.status, deadletter_pb2.ReasonCode.Name(r.reason_code), r.field) for r in response.results
        ]
        assert statuses[4:] == [
            (4, ingest_pb2.RECORD_STATUS_ACCEPTED, "REASON_CODE_UNSPECIFIED", ""),
            (5, ingest_pb2.RECORD_STATUS_REJECTED, "REASON_CODE_OUT_OF_RANGE", "amount"),
            (6, ingest_pb2.RECORD_STATUS_REJECTED, "REASON_CODE_MALFORMED_PAYLOAD", ""),
            (7, ingest_pb2.RECORD_STATUS_REJECTED, "REASON_CODE_NOT_ALLOWED_VALUE", "merchant_category"),
        ]
        assert too_many.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "limit 20" in str(too_many.value.details())
        assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 2048" in str(
            too_big.value.details()
        )
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND and "card_transactions" in str(unknown.value.details())

        upstream = await scan(bootstrap, tx_topic)
        assert len(upstream) == 7, "5 accepted + 2 retried, acknowledged before the answer"
        consumed = {"service": "ingest", "topic": tx_topic}
        before = REGISTRY.get_sample_value("aimesh_events_consumed_total", consumed) or 0.0
        async with ingest_catalog(settings) as catalog:
            consumer = build_consumer(settings, build_pipeline(settings, producer, None, catalog))
            await run_until(
                consumer,
                lambda: (REGISTRY.get_sample_value("aimesh_events_consumed_total", consumed) or 0.0) - before >= 7,
                within_s=60,
            )

    canonical = Counter(e.id for e in await scan(bootstrap, settings.records_topic))
    assert canonical == {f"p{i}": 1 for i in range(5)}, "each accepted record once, the retried ones deduplicated"
    letters = [e.parse(deadletter_pb2.DeadLetter) for e in await scan(bootstrap, settings.dlq_topic)]
    assert sorted(deadletter_pb2.ReasonCode.Name(d.reason_code) for d in letters) == [
        "REASON_CODE_MALFORMED_PAYLOAD",
        "REASON_CODE_NOT_ALLOWED_VALUE",
        "REASON_CODE_OUT_OF_RANGE",
    ]
    assert all(PAN.encode() not in d.original_payload for d in letters)


async def test_publish_is_unavailable_when_kafka_is_unreachable(settings: IngestSettings) -> None:
    unreachable = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{closed_port()}"})
    producer = EventProducer(unreachable.kafka_bootstrap, source="ingest", request_timeout_ms=2000)
    async for stub in serve_api(unreachable, producer):
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await stub.Publish(
                ingest_pb2.PublishRequest(source="card_transactions", records=[payment("x")]), timeout=15
            )
    assert down.value.code() is grpc.StatusCode.UNAVAILABLE, down.value
    assert "no record of this call is accepted" in str(down.value.details())
