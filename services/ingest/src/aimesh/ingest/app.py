"""ingest wiring: the upstream consumer (validate -> canonical topic, DLQ, lake), the gRPC API and the admin app.

The consumer uses ``IngestPipeline.handle_batch`` as its batch handler, each partition batch in one
Kafka transaction of this replica's ``TransactionalProducer`` (``INGEST_TRANSACTIONAL_ID``): its
canonical and DLQ records and its offsets commit together, after its event ids are claimed in the
seen-events table and its lake files are durable (see ``aimesh.ingest.pipeline``). The gRPC API
(``aimesh.ingest.api``) serves the push intake and the source registry, which is kept in the same
database. The service ships no source definitions: they are registered at runtime (``RegisterSource``,
``aimesh ingest apply FILE``), or from the optional ``INGEST_SOURCES_FILE`` at start (``open_registry``).
The consumer's subscription follows the source catalog (``aimesh.ingest.catalog``), so a source
registered on any replica is consumed by every replica without a restart.
"""

from __future__ import annotations

import gc
import logging
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.bus import EventConsumer, EventProducer, EventSender, TransactionalProducer
from aimesh.core.deadletter import DeadLetterPublisher, dead_letter_bounds
from aimesh.core.errors import FailedPrecondition
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.runner import ServiceRuntime
from aimesh.core.sql import create_engine, migrate, ping
from aimesh.ingest.access import ACCESS
from aimesh.ingest.api import IngestServiceApi
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.dedupe import SeenStore
from aimesh.ingest.field_checks import EventTimeBounds
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.pipeline import IngestPipeline
from aimesh.ingest.push import PushIntake, PushLimits
from aimesh.ingest.registry import SourceRegistry
from aimesh.ingest.seen_store import SqlSeenStore
from aimesh.ingest.settings import DEV_PII_SECRET, IngestSettings
from aimesh.ingest.sources import load_sources

log = logging.getLogger(__name__)
SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"
GC_YOUNG_THRESHOLD = 50_000
PRODUCER_BATCH_BYTES = 512 * 1024
"""Bytes per output partition the transactional producer collects before it must wait for a send: room
for a whole input batch's records, so queuing them never waits on the broker (aiokafka's default, 16 KiB,
made the send loop wait for a round trip every ~40 canonical records)."""


async def open_registry(settings: IngestSettings, engine: AsyncEngine) -> SourceRegistry:
    """The source registry of the (migrated) database, with ``INGEST_SOURCES_FILE`` applied to it if set.

    A definition in the file that differs from the stored one is registered as a new version through
    the compatibility check; without a file the registry is used as stored (empty on a new database).
    Raises ``ValueError`` (``OSError`` when it cannot be read) when the file is invalid or one of its
    definitions would break existing consumers (naming the source and every reason): the service must
    not start.
    """
    registry = SourceRegistry(engine)
    file = settings.sources_file
    if file is None:
        log.info("no INGEST_SOURCES_FILE: serving the sources stored in the registry (register more at runtime)")
        return registry
    try:
        stored = await registry.apply(load_sources(file))
    except FailedPrecondition as exc:
        raise ValueError(f"{file} is refused: {exc.message}") from exc
    for entry in stored:
        log.info(
            "source version stored from the sources file",
            extra={"ingest.source": entry.definition.name, "ingest.version": entry.definition.version},
        )
    return registry


async def open_catalog(settings: IngestSettings, registry: SourceRegistry) -> SourceCatalog:
    """The current source versions with the deployment's topic overrides (an override of a source not
    registered yet applies once it is); raises what the registry raised."""
    secret = settings.pii_secret.get_secret_value()
    if secret == DEV_PII_SECRET:
        log.warning("INGEST_PII_SECRET is not set: PII tokens use the development secret; set it in production")
    catalog = SourceCatalog(
        registry,
        Tokenizer(secret),
        topic_overrides=settings.source_topics,
        max_payload_bytes=settings.max_payload_bytes,
        event_time_bounds=EventTimeBounds(
            max_future_skew_s=settings.event_time_max_future_skew_seconds,
            max_age_days=settings.event_time_max_age_days,
            oldest_us=settings.event_time_oldest_us,
        ),
    )
    await catalog.refresh()
    log.info(
        "source catalog loaded",
        extra={"ingest.sources": catalog.names, "ingest.topics": list(catalog.topics)},
    )
    if catalog.pending_overrides:
        log.info(
            "topic overrides wait for their sources to be registered",
            extra={"ingest.sources": catalog.pending_overrides},
        )
    return catalog


def build_api(
    settings: IngestSettings, registry: SourceRegistry, catalog: SourceCatalog, producer: EventProducer
) -> IngestServiceApi:
    """The IngestService implementation; pushed records and their dead letters go through ``producer``
    (acks=all, not transactional: a Publish answer waits for each record's acknowledgement)."""
    limits = PushLimits(
        max_records=settings.push_max_records,
        max_record_bytes=settings.push_max_record_bytes,
        ack_timeout_s=settings.push_ack_timeout_seconds,
    )
    intake = PushIntake(
        catalog, producer, dlq_topic=settings.dlq_topic, limits=limits, dead_letter_bounds=dead_letter_bounds(settings)
    )
    return IngestServiceApi(intake, registry, catalog)


def build_pipeline(
    settings: IngestSettings, sender: EventSender, seen_store: SeenStore | None, catalog: SourceCatalog
) -> IngestPipeline:
    """The pipeline the settings describe, validating against ``catalog``'s current source versions.

    ``sender`` is the ``TransactionalProducer`` the consumer drives (or a plain producer for at-least-once);
    without ``seen_store`` duplicates are only dropped while their id is in the in-memory cache.
    """
    return IngestPipeline(
        catalog,
        sender,
        lake_root=settings.lake_root,
        records_topic=settings.records_topic,
        dlq_topic=settings.dlq_topic,
        dedupe_capacity=settings.dedupe_capacity,
        seen_store=seen_store,
        dead_letter_bounds=dead_letter_bounds(settings),
    )


def build_consumer(
    settings: IngestSettings, pipeline: IngestPipeline, transactions: TransactionalProducer | None = None
) -> EventConsumer:
    """The upstream consumer, one partition batch at a time (at most ``max_batch`` records).

    It reads the intake topics of the pipeline's catalog as they are before each poll, so sources
    registered while it runs are subscribed to without a restart (from their earliest offset). With
    ``transactions`` (the producer ``pipeline`` sends through) each batch's records and offsets commit in
    one Kafka transaction, and a record the consumer itself dead-letters (permanent error, retries
    exhausted) goes to the DLQ topic in the transaction that commits its offset; without, offsets are
    committed after each batch's effects are durable.
    """
    return EventConsumer(
        settings.kafka_bootstrap,
        group_id=settings.group_id,
        topics_provider=lambda: pipeline.topics,
        batch_handler=pipeline.handle_batch,
        transactions=transactions,
        dead_letters=(
            DeadLetterPublisher(
                transactions,
                settings.service_name,
                dead_letter_bounds(settings),
                topic=settings.dlq_topic,
                masker=pipeline.masker,
            )
            if transactions is not None
            else None
        ),
        service=settings.service_name,
        max_batch=settings.max_batch,
        fetch_max_bytes=settings.fetch_max_bytes,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
    )


async def start_transactional_producer(settings: IngestSettings, runtime: ServiceRuntime) -> TransactionalProducer:
    """This replica's transactional producer, started (fencing a zombie with the same id) and closed last.

    Raises aiokafka's ``KafkaError`` when Kafka does not answer.
    """
    producer = TransactionalProducer(
        settings.kafka_bootstrap,
        source=settings.service_name,
        transactional_id=settings.transactional_id_or_default,
        transaction_timeout_ms=int(settings.transaction_timeout_seconds * 1000),
        max_batch_size=PRODUCER_BATCH_BYTES,
    )
    await producer.start()
    runtime.add_cleanup(producer.stop)
    log.info("transactional producer ready", extra={"transactional_id": settings.transactional_id_or_default})
    return producer


async def check_lake_writable(settings: IngestSettings) -> None:
    """Readiness: the lake root exists (created if needed) and accepts a file; raises ``OSError`` otherwise."""
    root = settings.lake_root
    root.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".ready-", dir=root)
    os.close(fd)
    os.unlink(probe)


def tune_garbage_collector() -> None:
    """Make the cyclic garbage collector cheap for the record hot path; call once, after start-up.

    Objects alive now (modules, settings, clients) are moved out of the collector's sight
    (``gc.freeze``), and the youngest generation is collected every ``GC_YOUNG_THRESHOLD`` allocations
    instead of 700: every record allocates dozens of short-lived objects, and each older-generation
    collection would traverse the long-lived ones again. Memory stays bounded (by that many objects).
    """
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def serve_ingest(settings: IngestSettings) -> None:
    """Run the ingest service until SIGTERM (the consumer finishes its batch and commits first)."""

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        engine = create_engine(settings.sqlalchemy_url())
        runtime.add_cleanup(engine.dispose)
        await migrate(engine, MIGRATIONS)
        runtime.probes.readiness["database"] = lambda: ping(engine)
        registry = await open_registry(settings, engine)
        catalog = await open_catalog(settings, registry)
        runtime.add_part("source-catalog", lambda: catalog.run(settings.registry_refresh_seconds), catalog.stop)
        api = build_api(settings, registry, catalog, producer)
        transactions = await start_transactional_producer(settings, runtime)
        pipeline = build_pipeline(settings, transactions, SqlSeenStore(engine), catalog)
        runtime.add_grpc(
            GrpcServer(
                settings,
                [lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(api, server)],
                [SERVICE_NAME],
                access=ACCESS,
            )
        )
        runtime.add_consumer(build_consumer(settings, pipeline, transactions))
        runtime.probes.readiness["lake"] = lambda: check_lake_writable(settings)
        tune_garbage_collector()

    await serve(settings, version("aimesh-ingest"), wire)
