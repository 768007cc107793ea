"""ingest as a separate process, SIGKILLed three times mid-stream: still exactly once, by event id.

Publishes 20,000 generated bank events (1% malformed) to unique upstream topics, runs
``python -m aimesh.ingest`` (Kafka transactions, SQLite seen-events table, lake in a temp dir), kills
it with SIGKILL at three random moments while it works and restarts it each time with the same
transactional id, then lets it finish. Then re-publishes 50 valid records accepted before the kills
(duplicate event ids at new offsets). Asserts: every valid record exactly once on the canonical topic
(read_committed) and in the lake, every malformed one exactly once on the DLQ (read_committed) with
its reason, the 50 duplicates dropped and counted by the process that saw them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.core import lake
from aimesh.examples.banking import GeneratorConfig, Stream, generate_events
from aimesh.examples.banking.publisher import bank_producer, publish_events
from tests.integration.ingest_processes import IngestProcess, group_caught_up, read_committed
from tests.integration.ingest_sources import BANKING_SOURCES

pytestmark = pytest.mark.integration

EVENTS = 20_000
DUPLICATES = 50
KILLS = 3
SOURCES = ("card_transactions", "chargebacks")


async def wait_for(condition: object, within_s: float, what: str, process: IngestProcess) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        if not process.alive():
            raise AssertionError(f"ingest exited while waiting for {what}:\n{process.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within_s}s:\n{process.tail()}")
        await asyncio.sleep(0.1)


def handled(process: IngestProcess) -> float:
    """Records this run accepted, rejected or dropped (0 while /metrics does not answer)."""
    return sum(
        process.try_metric(name) or 0.0
        for name in (
            "aimesh_ingest_records_accepted_total",
            "aimesh_ingest_records_rejected_total",
            "aimesh_ingest_duplicates_dropped_total",
        )
    )


async def test_kill_9_three_times_mid_stream_keeps_canonical_topic_dlq_and_lake_exactly_once(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    tx_topic, cb_topic = await make_topic("eo-tx"), await make_topic("eo-cb")
    records_topic, dlq_topic = await make_topic("eo-records"), await make_topic("eo-dlq", partitions=1)
    topics = {Stream.TRANSACTIONS: tx_topic, Stream.CHARGEBACKS: cb_topic}
    config = GeneratorConfig(
        events=EVENTS, seed=7, end=datetime(2025, 3, 1, tzinfo=UTC), span=timedelta(days=10), malformed_fraction=0.01
    )
    generated = list(generate_events(config))
    async with bank_producer(bootstrap) as bank:
        summary = await publish_events(bank, generated, topics=topics)
    valid = {e.event_id: e for e in generated if e.malformed is None}
    assert summary.total == EVENTS and len(summary.malformed) >= 150

    ingest = IngestProcess(
        "ingest",
        {
            "INGEST_KAFKA_BOOTSTRAP": bootstrap,
            "INGEST_SOURCES_FILE": str(BANKING_SOURCES),
            "INGEST_SOURCE_TOPICS": orjson.dumps({"card_transactions": tx_topic, "chargebacks": cb_topic}).decode(),
            "INGEST_RECORDS_TOPIC": records_topic,
            "INGEST_DLQ_TOPIC": dlq_topic,
            "INGEST_CONSUMER_GROUP": f"ingest-eo-{unique}",
            "INGEST_TRANSACTIONAL_ID": f"ingest-eo-{unique}-0",
            "INGEST_DATA_DIR": str(tmp_path / "data"),
            "INGEST_PII_SECRET": "eo-secret",
            "INGEST_MAX_BATCH": "250",
        },
        tmp_path,
    )
    rng = random.Random(unique)
    started = time.perf_counter()
    try:
        for _ in range(KILLS):
            ingest.start()
            threshold = rng.randint(300, 2500)
            await wait_for(lambda n=threshold: handled(ingest) >= n, 60.0, f"{threshold} records handled", ingest)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            ingest.kill()
        ingest.start()
        await wait_for(lambda: handled(ingest) > 0, 60.0, "the final run handling records", ingest)
        deadline = time.monotonic() + 60.0
        while not await group_caught_up(bootstrap, f"ingest-eo-{unique}", {tx_topic: 3, cb_topic: 3}):
            assert ingest.alive() and time.monotonic() < deadline, f"final run did not catch up:\n{ingest.tail()}"
            await asyncio.sleep(0.5)

        early = [e for e in generated[:1500] if e.malformed is None][:DUPLICATES]
        async with bank_producer(bootstrap) as bank:
            await publish_events(bank, early, topics=topics)
        await wait_for(
            lambda: ingest.try_metric("aimesh_ingest_duplicates_dropped_total") == DUPLICATES,
            30.0,
            f"{DUPLICATES} duplicates dropped",
            ingest,
        )
        elapsed = time.perf_counter() - started
        print(f"\n{EVENTS} records through {KILLS} SIGKILLs and restarts in {elapsed:.1f}s")
    finally:
        ingest.terminate()
    assert ingest.starts == KILLS + 1

    canonical = await read_committed(bootstrap, records_topic, 3)
    ids = Counter(e.id for e in canonical)
    assert set(ids) == set(valid), f"missing {len(set(valid) - set(ids))}, unexpected {len(set(ids) - set(valid))}"
    assert [i for i, n in ids.items() if n > 1] == [], "each valid record exactly once on the canonical topic"

    lake_ids: Counter[str] = Counter()
    for source in SOURCES:
        lake_ids.update(lake.dataset(tmp_path / "data" / "lake", source).to_table().column("event_id").to_pylist())
    assert set(lake_ids) == set(valid) and set(lake_ids.values()) == {1}, "each valid record exactly once in the lake"

    dead = [e.parse(deadletter_pb2.DeadLetter) for e in await read_committed(bootstrap, dlq_topic, 1)]
    positions = Counter((d.upstream.topic, d.upstream.partition, d.upstream.offset) for d in dead)
    assert set(positions.values()) == {1}, "each rejected record exactly once on the DLQ"
    by_position = {(d.upstream.topic, d.upstream.partition, d.upstream.offset): d for d in dead}
    assert set(by_position) == {(m.topic, m.partition, m.offset) for m in summary.malformed}
    for m in summary.malformed:
        letter = by_position[(m.topic, m.partition, m.offset)]
        assert deadletter_pb2.ReasonCode.Name(letter.reason_code) == f"REASON_CODE_{m.expected_reason}", (m, letter)
        assert letter.message
