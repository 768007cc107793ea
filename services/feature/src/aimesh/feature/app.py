"""feature wiring: the FeatureService gRPC API, the online-store consumer and the admin app on one runtime.

At start the migrations run and ``definitions_file`` is applied when set (the service ships no
definitions: a use case's pack applies its own); views never backfilled for their current layout are
backfilled from the lake in the background while the consumer already applies new records (see
``offline.backfill``); definitions applied through other replicas are picked up every
``registry_refresh_seconds`` (see ``definitions.sync``). Readiness is serving (GetOnlineFeatures ...):
``/readyz`` checks the database and the online store (Redis when ``online_store_url`` names one); Kafka
is only a degraded check (streaming updates pause while the broker is away and catch up after, which
the lag metrics show), never a 503.
"""

from __future__ import annotations

from importlib.metadata import version

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.deadletter import dead_letter_publisher
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.runner import ServiceRuntime
from aimesh.core.sql import create_engine, ping
from aimesh.feature.access import ACCESS
from aimesh.feature.service import FeatureStore
from aimesh.feature.settings import FeatureSettings

SERVICE_NAME = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"].full_name


async def serve_feature(settings: FeatureSettings) -> None:
    """Run the feature service until SIGTERM."""

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        engine = create_engine(settings.sqlalchemy_url())
        runtime.add_cleanup(engine.dispose)
        features = FeatureStore(
            engine,
            settings.lake_root,
            allowed_lateness=settings.allowed_lateness,
            cache_entries=settings.online_cache_entries,
            online_store_url=settings.online_store_url,
        )
        await features.start(settings.definitions_file)
        sync = features.registry_sync
        runtime.add_part("registry-sync", lambda: sync.run(settings.registry_refresh_seconds), sync.stop)
        runtime.probes.readiness["database"] = lambda: ping(engine)
        runtime.probes.readiness["online-store"] = features.store.ping  # Redis, or the database again
        api = features.api()
        runtime.add_grpc(
            GrpcServer(
                settings,
                [lambda server: feature_pb2_grpc.add_FeatureServiceServicer_to_server(api, server)],
                [SERVICE_NAME],
                access=ACCESS,
            )
        )
        features.schedule_backfills()
        runtime.add_cleanup(features.stop)
        if settings.topics:
            dead_letters = dead_letter_publisher(producer, settings)
            runtime.add_consumer(
                EventConsumer(
                    settings.kafka_bootstrap,
                    group_id=settings.group_id,
                    topics=settings.topics,
                    batch_handler=features.updater(dead_letters),
                    dead_letters=dead_letters,
                    service=settings.service_name,
                    max_batch=settings.consumer_max_batch,
                )
            )

    await serve(settings, version("aimesh-feature"), wire, kafka_readiness=False)
