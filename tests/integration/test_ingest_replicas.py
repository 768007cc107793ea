"""Two ingest replicas in one consumer group share a 6-partition upstream topic and write each record once.

Both processes (different transactional ids, same group, lake and SQLite seen-events file) start;
once the group has spread the partitions over both, 6,000 generated events are published. Asserts:
both replicas accepted records (their own /metrics), their partitions do not overlap, and together
every valid record is exactly once on the canonical topic (read_committed) and in the lake.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from aimesh.core import lake
from aimesh.examples.banking import GeneratorConfig, Stream, generate_events
from aimesh.examples.banking.publisher import bank_producer, publish_events
from tests.integration.ingest_processes import IngestProcess, group_caught_up, read_committed
from tests.integration.ingest_sources import BANKING_SOURCES

pytestmark = pytest.mark.integration

EVENTS = 6000
PARTITIONS = 6


async def test_two_replicas_share_the_partitions_and_write_each_record_once(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    tx_topic = await make_topic("rep-tx", partitions=PARTITIONS)
    cb_topic = await make_topic("rep-cb", partitions=PARTITIONS)
    records_topic, dlq_topic = await make_topic("rep-records"), await make_topic("rep-dlq", partitions=1)
    group = f"ingest-rep-{unique}"
    shared = {
        "INGEST_KAFKA_BOOTSTRAP": bootstrap,
        "INGEST_SOURCES_FILE": str(BANKING_SOURCES),
        "INGEST_SOURCE_TOPICS": orjson.dumps({"card_transactions": tx_topic, "chargebacks": cb_topic}).decode(),
        "INGEST_RECORDS_TOPIC": records_topic,
        "INGEST_DLQ_TOPIC": dlq_topic,
        "INGEST_CONSUMER_GROUP": group,
        "INGEST_LAKE_DIR": str(tmp_path / "lake"),
        "INGEST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'seen.db'}",
        "INGEST_MAX_BATCH": "200",
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
        deadline = time.monotonic() + 60
        while True:
            assigned = [r.assigned_partitions() for r in replicas]
            if all(assigned) and sum(len(a or ()) for a in assigned) == 2 * PARTITIONS:
                break
            assert time.monotonic() < deadline, f"partitions not spread: {assigned}\n{replicas[0].tail()}"
            await asyncio.sleep(0.3)
        first, second = (a or set() for a in assigned)
        assert not first & second, "a partition is assigned to both replicas"

        config = GeneratorConfig(
            events=EVENTS,
            seed=11,
            end=datetime(2025, 3, 1, tzinfo=UTC),
            span=timedelta(days=5),
            malformed_fraction=0.01,
        )
        generated = list(generate_events(config))
        async with bank_producer(bootstrap) as bank:
            await publish_events(bank, generated, topics={Stream.TRANSACTIONS: tx_topic, Stream.CHARGEBACKS: cb_topic})
        deadline = time.monotonic() + 60
        while not await group_caught_up(bootstrap, group, {tx_topic: PARTITIONS, cb_topic: PARTITIONS}):
            assert all(r.alive() for r in replicas) and time.monotonic() < deadline, replicas[0].tail()
            await asyncio.sleep(0.5)
        accepted = [r.metric("aimesh_ingest_records_accepted_total") for r in replicas]
    finally:
        for replica in replicas:
            replica.terminate()

    valid = {e.event_id for e in generated if e.malformed is None}
    assert all(n > 0 for n in accepted), f"both replicas must have accepted records: {accepted}"
    assert sum(accepted) == len(valid), accepted

    ids = Counter(e.id for e in await read_committed(bootstrap, records_topic, 3))
    assert set(ids) == valid and set(ids.values()) == {1}, "each valid record exactly once on the canonical topic"
    lake_ids: Counter[str] = Counter()
    for source in ("card_transactions", "chargebacks"):
        lake_ids.update(lake.dataset(tmp_path / "lake", source).to_table().column("event_id").to_pylist())
    assert set(lake_ids) == valid and set(lake_ids.values()) == {1}, "each valid record exactly once in the lake"
