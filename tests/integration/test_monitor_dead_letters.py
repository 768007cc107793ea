"""Monitor on the real Kafka and Elasticsearch: one bad document never stalls its partition.

A batch holds good predictions, one whose request id is 1 MiB (its document is too large, and its dead
letter would exceed the producer's 1 MiB record limit), one whose feature name nests deeper than
Elasticsearch's mapping depth limit, and one with 10,000 entity ids (indexed: the template maps the
entity map as one flattened field, however many keys). The good ones are indexed by id, each bad one
is dead-lettered once onto the monitor DLQ with its reason (the oversized one as a stored reference),
and the consumer's committed offset moves past the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from elasticsearch import AsyncElasticsearch

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.deadletter import DEFAULT_MAX_RECORD_BYTES, DeadLetterBounds, DeadLetterPublisher, PayloadStore
from aimesh.core.events import Event
from aimesh.core.scan import TopicScan
from aimesh.core.testing import run_until
from aimesh.monitor.elastic import ElasticStore
from aimesh.monitor.indexing import EventIndexer
from tests.integration.elastic_indices import drop_monitor_indices

DEEP_FEATURE = ".".join(["level"] * 25)
"""A feature name Elasticsearch expands into 25 nested objects: over its mapping depth limit (20)."""


def prediction(
    event_id: str, *, request_id: str = "r", entities: int = 1, feature: str = "f"
) -> inference_events.Prediction:
    p = inference_events.Prediction(
        event_id=event_id,
        request_id=request_id,
        model_name="m",
        model_version=1,
        score=0.5,
        entity_ids={f"e{i:05d}": f"id-{i}" for i in range(entities)},
        features={feature: 1.0},
    )
    p.time.GetCurrentTime()
    return p


async def test_bad_documents_are_dead_lettered_once_and_the_partition_moves_on(  # type: ignore[no-untyped-def]
    endpoints, make_topic, kafka_admin: AIOKafkaAdminClient, unique, tmp_path: Path
) -> None:
    topic = await make_topic("predictions", partitions=1)
    dlq = await make_topic("monitor-dlq", partitions=1)
    store = ElasticStore(endpoints.elasticsearch_url, f"dl-{unique}")
    es = AsyncElasticsearch(endpoints.elasticsearch_url)
    await store.ensure_templates()
    huge = prediction("huge", request_id="x" * (1024 * 1024))
    batch = [prediction("good-1"), huge, prediction("good-2"), prediction("fields", feature=DEEP_FEATURE)]
    batch += [prediction("good-3"), prediction("wide", entities=10_000)]
    # the upstream producer may send up to 16 MiB uncompressed: gzip keeps the batch under the broker's limit
    async with EventProducer(
        endpoints.kafka_bootstrap, source="inference", compression_type="gzip", max_request_size=16 * 1024 * 1024
    ) as upstream:
        for p in batch:
            await upstream.publish(topic, p, key="k", event_id=p.event_id)
    handled: list[int] = []
    group = f"g-{unique}"
    try:
        async with EventProducer(endpoints.kafka_bootstrap, source="monitor") as producer:  # default 1 MiB limit
            dead_letters = DeadLetterPublisher(producer, "monitor", DeadLetterBounds(PayloadStore(tmp_path)), topic=dlq)
            # maps unbounded here: the 10,000-entity document reaches Elasticsearch whole
            indexer = EventIndexer(store, dead_letters, max_map_entries=100_000)

            async def handle(events: Sequence[Event]) -> None:
                await indexer.handle_batch(events)
                handled.extend(e.offset for e in events)

            consumer = EventConsumer(
                endpoints.kafka_bootstrap,
                group_id=group,
                topics=[topic],
                batch_handler=handle,
                service="monitor",
                max_partition_fetch_bytes=64 * 1024,
            )
            await run_until(consumer, lambda: len(handled) >= len(batch), within_s=90)
        assert sorted(handled) == list(range(len(batch))), "every record handled once: nothing retried"
        committed = await kafka_admin.list_consumer_group_offsets(group)
        assert committed[TopicPartition(topic, 0)].offset == len(batch), "the offset moved past the batch"

        await store.refresh()
        ids = ["good-1", "good-2", "good-3", "huge", "fields", "wide"]
        found = await es.mget(index=store.indices["predictions"], ids=ids)
        assert {d["_id"]: d["found"] for d in found["docs"]} == {
            "good-1": True,
            "good-2": True,
            "good-3": True,
            "huge": False,
            "fields": False,
            "wide": True,
        }

        async with TopicScan(endpoints.kafka_bootstrap, dlq) as scan:
            letters = {}
            async for event in scan:
                letter = event.parse(deadletter_pb2.DeadLetter)
                assert letter.event_id not in letters, "dead-lettered once"
                letters[letter.event_id] = (letter, len(event.value))
        assert set(letters) == {"huge", "fields"}
        too_large, size = letters["huge"]
        assert deadletter_pb2.ReasonCode.Name(too_large.reason_code) == "REASON_CODE_DOCUMENT_TOO_LARGE"
        assert size < DEFAULT_MAX_RECORD_BYTES and not too_large.original_payload
        original = huge.SerializeToString()
        assert too_large.payload_size == len(original) and too_large.payload_preview == original[:1024]
        assert too_large.payload_ref.endswith(hashlib.sha256(original).hexdigest())
        assert PayloadStore.read(too_large.payload_ref) == original
        assert too_large.service == "monitor" and too_large.upstream.offset == 1
        fields, _ = letters["fields"]
        assert deadletter_pb2.ReasonCode.Name(fields.reason_code) == "REASON_CODE_TOO_MANY_FIELDS", fields.message
        assert fields.original_payload == batch[3].SerializeToString()

        # with the default bound the same prediction is indexed, its entity map cut and flagged
        bounded = EventIndexer(store, dead_letters)
        again = prediction("fields-bounded", entities=10_000)
        event = Event(
            topic, 0, 99, b"k", again.SerializeToString(), (("ce_type", b"aimesh.api.inference.v1.Prediction"),), 0
        )
        await bounded.handle_batch([event])
        await store.refresh()
        doc = (await es.get(index=store.indices["predictions"], id="fields-bounded"))["_source"]
        assert len(doc["entity"]) == 100 and doc["truncated"] == ["entity"] and doc["truncated_count"] == 9_900
    finally:
        await drop_monitor_indices(es, store.prefix)
        await es.close()
        await store.close()
