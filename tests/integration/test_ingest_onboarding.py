"""Sources onboarded at runtime: two ingest replicas start with no source at all, a new use case's sources
are registered through one of them, and its records, pushed to the other one and produced onto the
upstream topic, reach the canonical topic and the lake exactly once, without a restart.

Both processes (``python -m aimesh.ingest``, same consumer group, registry database and lake; no
``INGEST_SOURCES_FILE``; ``INGEST_REGISTRY_REFRESH_SECONDS=1``) become ready with nothing to consume.
``apply_sources`` (RegisterSource) registers, through replica 0, an upstream source on a fresh
6-partition topic and a push-only source (its push topic does not exist yet). Then replica 1 is asked
to ``Publish`` until its catalog knows the sources (asserted within the refresh interval plus slack);
once the group has spread the new topic's partitions over both replicas, records are produced onto the
upstream topic directly, and the test waits for the canonical topic.
Asserts: every accepted event id exactly once on the canonical topic (read_committed) and in the lake,
both replicas consumed some of the upstream topic's partitions (the one that did not take the
registration subscribed too), and each process started once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.core import lake
from aimesh.core.channels import open_caller_channel
from aimesh.ingest.operations import Action, apply_sources
from aimesh.ingest.sources import push_topic
from tests.integration.ingest_processes import IngestProcess, read_committed

pytestmark = pytest.mark.integration

PARTITIONS = 6
REFRESH_S = 1.0
PRODUCED = 120
PUSHED = 30


def sources_document(orders: str, readings: str, upstream_topic: str) -> str:
    """Two sources of a use case ingest has never seen: orders from an upstream topic, pushed readings."""
    return f"""
sources:
  - name: {orders}
    topic: {upstream_topic}
    entity_type: customer
    entity_key: customer_id
    event_id_field: order_id
    event_time_field: placed_at
    pii_fields: [email]
    pii_token_fields: {{email: email_token}}
    fields:
      - {{name: order_id, type: string, required: true}}
      - {{name: customer_id, type: string, required: true}}
      - {{name: email, type: string}}
      - {{name: total, type: double, required: true, min: 0}}
      - {{name: placed_at, type: timestamp, required: true}}
  - name: {readings}
    entity_type: sensor
    entity_key: sensor_id
    event_id_field: reading_id
    event_time_field: at
    fields:
      - {{name: reading_id, type: string, required: true}}
      - {{name: sensor_id, type: string, required: true}}
      - {{name: value, type: double, required: true}}
      - {{name: at, type: timestamp, required: true}}
"""


def order(n: int) -> bytes:
    return orjson.dumps(
        {
            "order_id": f"o-{n:05d}",
            "customer_id": f"c-{n % 17}",
            "email": f"c{n % 17}@example.org",
            "total": 10.0 + n,
            "placed_at": "2025-04-01T08:00:00Z",
        }
    )


def reading(n: int) -> bytes:
    return orjson.dumps({"reading_id": f"r-{n:05d}", "sensor_id": f"s-{n % 3}", "value": n / 10, "at": 1743494400000})


async def publish_when_known(
    address: str, source: str, records: list[bytes], within_s: float
) -> ingest_pb2.PublishResponse:
    """Publish ``records`` to ``address``, retrying while the replica does not know ``source`` (NOT_FOUND)."""
    deadline = time.monotonic() + within_s
    async with open_caller_channel(address) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        request = ingest_pb2.PublishRequest(source=source, records=[ingest_pb2.Record(payload=r) for r in records])
        while True:
            try:
                response: ingest_pb2.PublishResponse = await stub.Publish(request, timeout=10)
                return response
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)


async def test_sources_registered_on_one_replica_are_consumed_by_both_without_a_restart(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, kafka_admin: AIOKafkaAdminClient, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    upstream = await make_topic("onboard-orders", partitions=PARTITIONS)
    records_topic, dlq_topic = await make_topic("onboard-records"), await make_topic("onboard-dlq", partitions=1)
    orders, readings = f"orders_{unique}", f"readings_{unique}"
    group = f"ingest-onboard-{unique}"
    shared = {
        "INGEST_KAFKA_BOOTSTRAP": bootstrap,
        "INGEST_RECORDS_TOPIC": records_topic,
        "INGEST_DLQ_TOPIC": dlq_topic,
        "INGEST_CONSUMER_GROUP": group,
        "INGEST_LAKE_DIR": str(tmp_path / "lake"),
        "INGEST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}",
        "INGEST_REGISTRY_REFRESH_SECONDS": str(REFRESH_S),
        "INGEST_PII_SECRET": f"onboard-{unique}",
    }
    replicas = [
        IngestProcess(
            f"ingest-{n}",
            {**shared, "INGEST_TRANSACTIONAL_ID": f"{group}-{n}", "INGEST_DATA_DIR": str(tmp_path / f"data-{n}")},
            tmp_path,
        )
        for n in range(2)
    ]
    try:
        for replica in replicas:  # one after the other: the first one migrates the shared SQLite file
            replica.start()
            replica.wait_ready()
        assert all(r.assigned_partitions() is None for r in replicas), "nothing to consume before the registration"

        applied = await apply_sources(
            replicas[0].grpc_address, sources_document(orders, readings, upstream), dry_run=False
        )
        assert [(c.name, c.action, c.version) for c in applied] == [
            (orders, Action.CREATED, 1),
            (readings, Action.CREATED, 1),
        ]
        registered = time.monotonic()
        pushed_orders = await publish_when_known(
            replicas[1].grpc_address, orders, [order(n) for n in range(PUSHED)], within_s=REFRESH_S + 10
        )
        known_after = time.monotonic() - registered
        pushed_readings = await publish_when_known(
            replicas[1].grpc_address, readings, [reading(n) for n in range(PUSHED)], within_s=10
        )
        assert pushed_orders.accepted_count == PUSHED and pushed_readings.accepted_count == PUSHED
        assert known_after < REFRESH_S + 5, f"replica 1 knew the sources only after {known_after:.1f}s"

        deadline = registered + REFRESH_S + 30  # the refresh, then the group's rebalance
        while not all({p for t, p in r.assigned_partitions() or () if t == upstream} for r in replicas):
            assert all(r.alive() for r in replicas), replicas[1].tail()
            assert time.monotonic() < deadline, f"the new topic is not spread over both replicas:\n{replicas[1].tail()}"
            await asyncio.sleep(0.2)
        spread_after = time.monotonic() - registered
        print(
            f"\nsources known by replica 1 after {known_after:.1f}s, both replicas consuming after {spread_after:.1f}s"
        )

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for n in range(PUSHED, PUSHED + PRODUCED):
                await producer.send(upstream, order(n), key=f"c-{n % 17}".encode())
            await producer.flush()
        finally:
            await producer.stop()

        expected = {f"o-{n:05d}" for n in range(PUSHED + PRODUCED)} | {f"r-{n:05d}" for n in range(PUSHED)}
        deadline = time.monotonic() + 90
        while True:
            ids = Counter(e.id for e in await read_committed(bootstrap, records_topic, 3))
            if set(ids) >= expected:
                break
            assert all(r.alive() for r in replicas), replicas[0].tail() + replicas[1].tail()
            assert time.monotonic() < deadline, (
                f"{len(expected - set(ids))} records missing on the canonical topic\n"
                f"{replicas[0].tail()}\n{replicas[1].tail()}"
            )
            await asyncio.sleep(0.5)
        assigned = [r.assigned_partitions() or set() for r in replicas]
        accepted = [r.metric("aimesh_ingest_records_accepted_total", source=orders) for r in replicas]
    finally:
        for replica in replicas:
            replica.terminate()
        await kafka_admin.delete_topics([push_topic(readings)])

    assert set(ids) == expected and set(ids.values()) == {1}, "each record exactly once on the canonical topic"
    lake_ids: Counter[str] = Counter()
    for source in (orders, readings):
        lake_ids.update(lake.dataset(tmp_path / "lake", source).to_table().column("event_id").to_pylist())
    assert set(lake_ids) == expected and set(lake_ids.values()) == {1}, "each record exactly once in the lake"
    upstream_parts = [{p for t, p in a if t == upstream} for a in assigned]
    assert all(upstream_parts), f"both replicas must consume the new topic: {assigned}"
    assert set().union(*upstream_parts) == set(range(PARTITIONS)) and not upstream_parts[0] & upstream_parts[1]
    assert all(n > 0 for n in accepted), f"both replicas must have accepted records of {orders}: {accepted}"
    assert [r.starts for r in replicas] == [1, 1], "no restart"
