"""ingest wiring: the upstream consumer (validate -> canonical topic, DLQ, lake), the gRPC API and the admin app.

The consumer uses ``IngestPipeline.handle_batch`` as its batch handler: a partition batch's offsets
are committed only after its canonical and DLQ records are acknowledged by Kafka and its lake files
are durable. The gRPC API still answers UNIMPLEMENTED (the synchronous ``Publish`` path comes later).
"""

from __future__ import annotations

import logging
import os
import tempfile
from importlib.metadata import version

from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.bus import EventConsumer, EventProducer, EventSender
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.runner import ServiceRuntime
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.pipeline import IngestPipeline
from aimesh.ingest.settings import DEV_PII_SECRET, IngestSettings
from aimesh.ingest.sources import load_sources

log = logging.getLogger(__name__)
SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


class IngestServiceApi(ingest_pb2_grpc.IngestServiceServicer):
    """The IngestService API; methods not overridden answer UNIMPLEMENTED."""


def build_pipeline(settings: IngestSettings, sender: EventSender) -> IngestPipeline:
    """The pipeline the settings describe; raises ``ValueError`` for bad source definitions or overrides."""
    secret = settings.pii_secret.get_secret_value()
    if secret == DEV_PII_SECRET:
        log.warning("INGEST_PII_SECRET is not set: PII tokens use the development secret; set it in production")
    return IngestPipeline(
        load_sources(settings.sources_file, settings.source_topics),
        Tokenizer(secret),
        sender,
        lake_root=settings.lake_root,
        records_topic=settings.records_topic,
        dlq_topic=settings.dlq_topic,
        dedupe_capacity=settings.dedupe_capacity,
        max_payload_bytes=settings.max_payload_bytes,
    )


def build_consumer(settings: IngestSettings, pipeline: IngestPipeline) -> EventConsumer:
    """The upstream consumer: manual commits after each partition batch's effects are durable."""
    return EventConsumer(
        settings.kafka_bootstrap,
        group_id=settings.group_id,
        topics=pipeline.topics,
        batch_handler=pipeline.handle_batch,
        service=settings.service_name,
        max_batch=settings.max_batch,
    )


async def check_lake_writable(settings: IngestSettings) -> None:
    """Readiness: the lake root exists (created if needed) and accepts a file; raises ``OSError`` otherwise."""
    root = settings.lake_root
    root.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".ready-", dir=root)
    os.close(fd)
    os.unlink(probe)


async def serve_ingest(settings: IngestSettings) -> None:
    """Run the ingest service until SIGTERM (the consumer finishes its batch and commits first)."""

    api = IngestServiceApi()  # type: ignore[abstract]  # unimplemented methods answer UNIMPLEMENTED

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        pipeline = build_pipeline(settings, producer)
        runtime.add_grpc(
            GrpcServer(
                settings,
                [lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(api, server)],
                [SERVICE_NAME],
            )
        )
        runtime.add_consumer(build_consumer(settings, pipeline))
        runtime.probes.readiness["lake"] = lambda: check_lake_writable(settings)

    await serve(settings, version("aimesh-ingest"), wire)
