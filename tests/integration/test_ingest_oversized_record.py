"""ingest as a process on the real Kafka: a 10 MiB upstream record sent gzip-compressed never stalls its partition.

To one partition of a registered source's upstream topic an aiokafka producer (``compression_type="gzip"``)
sends, one batch each: a good chargeback, a 10 MiB JSON record of repeated text (its compressed batch is a
few KiB, under the broker's default limit), a good one, a 10 MiB JSON record of seeded random letters (its
compressed batch is ~7 MiB: over the consumer's 1 MiB ``INGEST_MAX_PARTITION_FETCH_BYTES``, so the topic's
``max.message.bytes`` is raised for this test topic only), a good one and a 2 MiB record with a card number
in its text. ``python -m aimesh.ingest`` runs with its default limits (Kafka transactions, auth on).
Asserts: the three good records exactly once on the canonical topic (read_committed) and in the lake; each
big one exactly once on the DLQ as ``PAYLOAD_TOO_LARGE`` (over ``INGEST_MAX_PAYLOAD_BYTES``, 1 MiB), its DLQ
record under 1 MiB, its ``payload_ref`` file holding the exact original bytes (sha256 in the name and of
the content), the card number's one replaced by its token; the group's committed offset past all six.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import random
import string
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.core import lake
from aimesh.core.deadletter import DEFAULT_MAX_RECORD_BYTES, PayloadStore
from tests.integration.ingest_processes import IngestProcess, read_committed
from tests.integration.ingest_sources import BANKING_SOURCES

pytestmark = pytest.mark.integration

BIG = 10 * 1024 * 1024
PAN = "4111111111111111"
SECRET = "big-secret"
BROKER_DEFAULT_LIMIT = 1_048_588
"""Kafka's default ``max.message.bytes`` of a topic (the largest record batch it takes)."""
TOPIC_LIMIT = 16 * 1024 * 1024


def chargeback(event_id: str, **extra: str) -> bytes:
    """A valid chargeback of the banking pack, with ``extra`` (undeclared) fields; no run of 12+ digits."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    record = {
        "chargeback_id": event_id,
        "transaction_id": f"tx-{event_id}",
        "card_id": "card-a",
        "reason": "dispute",
        "timestamp": now,
        **extra,
    }
    return orjson.dumps(record)


def padded(event_id: str, filler: str, size: int = BIG) -> bytes:
    """A chargeback whose ``note`` field makes it exactly ``size`` bytes."""
    base = len(chargeback(event_id, note=""))
    return chargeback(event_id, note=(filler * (size // len(filler) + 1))[: size - base])


async def test_a_10_mib_gzip_record_is_dead_lettered_by_reference_and_the_partition_moves_on(  # type: ignore[no-untyped-def]
    endpoints, make_topic, kafka_admin: AIOKafkaAdminClient, unique, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    upstream = f"test.big-cb.{unique}"
    await kafka_admin.create_topics(
        [NewTopic(upstream, 1, 1, topic_configs={"max.message.bytes": str(TOPIC_LIMIT)})]  # this topic only
    )
    try:
        tx_topic = await make_topic("big-tx", partitions=1)
        records_topic, dlq_topic = await make_topic("big-records", partitions=1), await make_topic("big-dlq", 1)
        repeated = padded("cb-big-text", "a chargeback note that repeats itself; ")
        letters = random.Random(13).choices(string.ascii_letters, k=BIG)
        incompressible = padded("cb-big-random", "".join(letters))
        assert len(repeated) == len(incompressible) == BIG
        assert len(gzip.compress(repeated)) < 64 * 1024 < BROKER_DEFAULT_LIMIT
        assert len(gzip.compress(incompressible)) > 4 * 1024 * 1024, "the batch must exceed the partition fetch size"
        with_pan = padded("cb-big-pan", f"the card {PAN} was used; ", 2 * 1024 * 1024)
        sent = [chargeback("cb-good-1"), repeated, chargeback("cb-good-2"), incompressible, chargeback("cb-good-3")]
        sent.append(with_pan)

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, compression_type="gzip", max_request_size=TOPIC_LIMIT, acks="all"
        )
        await producer.start()
        try:
            offsets = [
                (await producer.send_and_wait(upstream, value, key=b"card-a", partition=0)).offset for value in sent
            ]
        finally:
            await producer.stop()
        assert offsets == list(range(len(sent)))

        group = f"ingest-big-{unique}"
        ingest = IngestProcess(
            "ingest",
            {
                "INGEST_KAFKA_BOOTSTRAP": bootstrap,
                "INGEST_SOURCES_FILE": str(BANKING_SOURCES),
                "INGEST_SOURCE_TOPICS": orjson.dumps({"card_transactions": tx_topic, "chargebacks": upstream}).decode(),
                "INGEST_RECORDS_TOPIC": records_topic,
                "INGEST_DLQ_TOPIC": dlq_topic,
                "INGEST_CONSUMER_GROUP": group,
                "INGEST_TRANSACTIONAL_ID": f"{group}-0",
                "INGEST_DATA_DIR": str(tmp_path / "data"),
                "INGEST_PII_SECRET": SECRET,
            },
            tmp_path,
        )
        tp = TopicPartition(upstream, 0)
        started = time.perf_counter()
        ingest.start()
        try:
            deadline = time.monotonic() + 90.0
            while True:
                committed = (await kafka_admin.list_consumer_group_offsets(group)).get(tp)
                if committed is not None and committed.offset >= len(sent):
                    break
                assert ingest.alive(), f"ingest exited:\n{ingest.tail()}"
                assert time.monotonic() < deadline, f"the partition did not move past the big records:\n{ingest.tail()}"
                await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
            assert committed.offset == len(sent), "the committed offset is past all six records"
            assert ingest.metric("aimesh_ingest_records_rejected_total", reason="PAYLOAD_TOO_LARGE") == 3
            assert ingest.metric("aimesh_ingest_records_accepted_total") == 3
        finally:
            ingest.terminate()
        print(f"\n3 oversized gzip records (2 x {BIG} B) + 3 good ones through ingest (start incl.) in {elapsed:.1f}s")

        canonical = await read_committed(bootstrap, records_topic, 1)
        assert sorted(e.id for e in canonical) == ["cb-good-1", "cb-good-2", "cb-good-3"], "each good one exactly once"
        lake_ids = lake.dataset(tmp_path / "data" / "lake", "chargebacks").to_table().column("event_id").to_pylist()
        assert sorted(lake_ids) == ["cb-good-1", "cb-good-2", "cb-good-3"], "each good one exactly once in the lake"

        dead = await read_committed(bootstrap, dlq_topic, 1)
        by_offset = {}
        for event in dead:
            letter = event.parse(deadletter_pb2.DeadLetter)
            assert letter.upstream.offset not in by_offset, "dead-lettered once"
            assert PAN.encode() not in event.value
            by_offset[letter.upstream.offset] = (letter, len(event.value))
        assert sorted(by_offset) == [1, 3, 5]
        root = tmp_path / "data" / "dead-letters"
        token = hmac.new(SECRET.encode(), PAN.encode(), hashlib.sha256).hexdigest().encode()
        for offset in (1, 3, 5):
            letter, size = by_offset[offset]
            original = sent[offset].replace(PAN.encode(), token)  # the DLQ copy never holds a raw card number
            assert (original == sent[offset]) == (offset != 5)
            assert deadletter_pb2.ReasonCode.Name(letter.reason_code) == "REASON_CODE_PAYLOAD_TOO_LARGE", letter.message
            assert f"{len(sent[offset])} bytes > limit {1024 * 1024}" in letter.message
            assert letter.source == "chargebacks" and letter.service == "ingest" and letter.upstream.topic == upstream
            assert size < DEFAULT_MAX_RECORD_BYTES and not letter.original_payload
            assert letter.payload_size == len(original) and letter.payload_preview == original[:1024]
            digest = hashlib.sha256(original).hexdigest()
            assert letter.payload_ref == (root / "sha256" / digest[:2] / digest).resolve().as_uri()
            stored = PayloadStore.read(letter.payload_ref)
            assert hashlib.sha256(stored).hexdigest() == digest and stored == original
    finally:
        await kafka_admin.delete_topics([upstream])
