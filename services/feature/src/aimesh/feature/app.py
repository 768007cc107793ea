"""feature wiring: the FeatureService gRPC API, the online-store consumer and the admin app on one runtime.

At start the online store's migrations run; ``/readyz`` then checks the database (and Kafka).
"""

from __future__ import annotations

from importlib.metadata import version

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.deadletter import DeadLetterPublisher
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.runner import ServiceRuntime
from aimesh.core.sql import create_engine, ping
from aimesh.feature.api import FeatureServiceApi
from aimesh.feature.consumer import OnlineUpdater
from aimesh.feature.retrieval import HistoricalRetrieval, OnlineRetrieval
from aimesh.feature.settings import FeatureSettings
from aimesh.feature.store import OnlineStore

SERVICE_NAME = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"].full_name


async def serve_feature(settings: FeatureSettings) -> None:
    """Run the feature service until SIGTERM."""

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        engine = create_engine(settings.sqlalchemy_url())
        runtime.add_cleanup(engine.dispose)
        store = OnlineStore(engine)
        await store.migrate()
        runtime.probes.readiness["database"] = lambda: ping(engine)
        api = FeatureServiceApi(  # type: ignore[abstract]  # ApplyDefinitions answers UNIMPLEMENTED for now
            OnlineRetrieval(store), HistoricalRetrieval(settings.lake_root)
        )
        runtime.add_grpc(
            GrpcServer(
                settings,
                [lambda server: feature_pb2_grpc.add_FeatureServiceServicer_to_server(api, server)],
                [SERVICE_NAME],
            )
        )
        if settings.topics:
            updater = OnlineUpdater(store, DeadLetterPublisher(producer, settings.service_name))
            runtime.add_consumer(
                EventConsumer(
                    settings.kafka_bootstrap,
                    group_id=settings.group_id,
                    topics=settings.topics,
                    batch_handler=updater,
                    service=settings.service_name,
                    max_batch=settings.consumer_max_batch,
                )
            )

    await serve(settings, version("aimesh-feature"), wire)
