"""`aimesh ingest replay-dlq` against real Kafka: dead-lettered records come back after a schema fix, once.

Records rejected for NOT_ALLOWED_VALUE (an unknown merchant category) are on the DLQ with their PAN
tokenised; the sources file then allows the category (a compatible widening, stored as version 2 when
the service restarts); the replay re-submits them and the restarted ingest consumer accepts them:
each reaches the canonical topic exactly once, its card token being the token of the original PAN
(the raw PAN never comes back). A second replay adds nothing to the canonical topic.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml
from prometheus_client import REGISTRY

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.bus import EventProducer
from aimesh.core.events import Event
from aimesh.core.scan import TopicScan
from aimesh.core.sql import create_engine, migrate
from aimesh.core.testing import run_until
from aimesh.ingest.app import MIGRATIONS, build_consumer, build_pipeline, open_catalog, open_registry
from aimesh.ingest.registry import SourceRegistry
from aimesh.ingest.replay import ReplayFilter, run_replay
from aimesh.ingest.seen_store import SqlSeenStore
from aimesh.ingest.settings import IngestSettings
from aimesh.ingest.sources import load_sources
from tests.integration.ingest_sources import BANKING_SOURCES

pytestmark = pytest.mark.integration

SECRET = "replay-secret"
VALID, CASINO = 12, 6


def pan(i: int) -> str:
    return f"4000000000{i:06d}"


def payment(i: int, category: str) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": f"tx-{i}",
            "card_id": f"card-{i % 4}",
            "card_number": pan(i),
            "customer_id": "cust-1",
            "merchant_id": "m-1",
            "merchant_category": category,
            "amount": 20.0 + i,
            "device_id": "d-1",
            "timestamp": "2025-01-01T10:00:00+00:00",
        }
    )


async def scan(bootstrap: str, topic: str) -> list[Event]:
    async with TopicScan(bootstrap, topic) as records:
        return [event async for event in records]


def consumed(topic: str) -> float:
    return REGISTRY.get_sample_value("aimesh_events_consumed_total", {"service": "ingest", "topic": topic}) or 0.0


async def run_ingest(
    settings: IngestSettings, registry: SourceRegistry, producer: EventProducer, store: SqlSeenStore, records: int
) -> None:
    """Run the ingest consumer (as a restarted service would: new catalog and pipeline, same group) over
    ``records`` more."""
    topic = settings.source_topics["card_transactions"]
    target = consumed(topic) + records
    catalog = await open_catalog(settings, registry)
    consumer = build_consumer(settings, build_pipeline(settings, producer, store, catalog))
    await run_until(consumer, lambda: consumed(topic) >= target, within_s=60)


def allowing_casino(path: Path) -> Path:
    document = {"sources": [s.model_dump(mode="json", exclude={"version"}) for s in load_sources(BANKING_SOURCES)]}
    for rule in document["sources"][0]["fields"]:
        if rule["name"] == "merchant_category":
            rule["allowed_values"].append("casino")
    path.write_text(yaml.safe_dump(document))
    return path


async def test_replay_after_a_compatible_fix_publishes_each_record_once(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    tx_topic = await make_topic("replay-tx", partitions=2)
    settings = IngestSettings(
        kafka_bootstrap=bootstrap,
        consumer_group=f"ingest-replay-{unique}",
        sources_file=BANKING_SOURCES,
        source_topics={"card_transactions": tx_topic, "chargebacks": await make_topic("replay-cb")},
        records_topic=await make_topic("replay-records"),
        dlq_topic=await make_topic("replay-dlq", partitions=1),
        data_dir=tmp_path,
        pii_secret=SECRET,
    )
    engine = create_engine(settings.sqlalchemy_url())
    await migrate(engine, MIGRATIONS)
    store = SqlSeenStore(engine)
    registry = await open_registry(settings, engine)
    async with EventProducer(bootstrap, source="bank") as bank:
        for i in range(VALID + CASINO):
            category = "casino" if i >= VALID else "grocery"
            await bank.send_raw(tx_topic, payment(i, category), key=f"card-{i % 4}", headers=[("origin", b"core")])
        await bank.stop()

    async with EventProducer(bootstrap, source="ingest") as producer:
        await run_ingest(settings, registry, producer, store, VALID + CASINO)
        letters = [e.parse(deadletter_pb2.DeadLetter) for e in await scan(bootstrap, settings.dlq_topic)]
        assert len(letters) == CASINO
        assert {deadletter_pb2.ReasonCode.Name(d.reason_code) for d in letters} == {"REASON_CODE_NOT_ALLOWED_VALUE"}
        assert all(list(d.masked_fields) == ["card_number"] for d in letters)

        fixed = settings.model_copy(update={"sources_file": allowing_casino(tmp_path / "sources.yaml")})
        fixed_registry = await open_registry(fixed, engine)
        assert (await fixed_registry.get("card_transactions")).definition.version == 2

        dry = await run_replay(fixed, only=ReplayFilter(reason="NOT_ALLOWED_VALUE"), dry_run=True)
        assert dry.resubmitted == CASINO and len(await scan(bootstrap, tx_topic)) == VALID + CASINO
        first = await run_replay(fixed, only=ReplayFilter(source="card_transactions", reason="NOT_ALLOWED_VALUE"))
        assert (first.scanned, first.resubmitted) == (CASINO, CASINO)
        await run_ingest(fixed, fixed_registry, producer, store, CASINO)
        after_first = Counter(e.id for e in await scan(bootstrap, settings.records_topic))

        second = await run_replay(fixed)
        assert second.resubmitted == CASINO, "the scan is stateless; the pipeline drops what it accepted"
        await run_ingest(fixed, fixed_registry, producer, store, CASINO)
        canonical = await scan(bootstrap, settings.records_topic)
    await engine.dispose()

    assert after_first == {f"tx-{i}": 1 for i in range(VALID + CASINO)}
    assert Counter(e.id for e in canonical) == after_first, "the second replay added nothing"
    assert len(await scan(bootstrap, settings.dlq_topic)) == CASINO, "nothing was dead-lettered again"
    for event in canonical:
        record = event.parse(events_pb2.CanonicalRecord)
        i = int(record.event_id.removeprefix("tx-"))
        assert record.schema_version == (2 if i >= VALID else 1)
        expected = hmac.new(SECRET.encode(), pan(i).encode(), hashlib.sha256).hexdigest()
        assert record.attributes["card_token"].string_value == expected
        assert pan(i).encode() not in event.value
