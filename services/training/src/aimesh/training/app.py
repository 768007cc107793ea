"""training wiring: the gRPC API, the run worker, the outbox relay, the aliased-model restore, the alert
consumer and the admin app.

``wire_training`` builds every part on a ``ServiceRuntime`` (also used in-process by the integration
tests); ``serve_training`` is ``python -m aimesh.training``. Readiness is accepting and running runs:
``/readyz`` checks the database; Kafka is only a degraded check (registry events wait in the outbox
table while the broker is away), never a 503.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.bus import EventProducer
from aimesh.core.feature_client import FeatureServiceClient
from aimesh.core.runner import ServiceRuntime
from aimesh.core.sql import create_engine, migrate, ping
from aimesh.training.access import ACCESS
from aimesh.training.api import TrainingServiceApi
from aimesh.training.deploy import Deployer
from aimesh.training.outbox import OutboxRelay
from aimesh.training.pipeline import PipelineConfig, TrainingPipeline
from aimesh.training.registry import Registry
from aimesh.training.restore import AliasedModelLoader
from aimesh.training.retrain import RetrainPolicy
from aimesh.training.runs import RunStore
from aimesh.training.settings import TrainingSettings
from aimesh.training.triton import TritonModelServer
from aimesh.training.worker import RunWorker

log = logging.getLogger(__name__)
SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name
MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class TrainingParts:
    """What ``wire_training`` built (tests reach into it)."""

    api: TrainingServiceApi
    runs: RunStore
    registry: Registry
    worker: RunWorker
    relay: OutboxRelay
    restorer: AliasedModelLoader


async def wire_training(settings: TrainingSettings, runtime: ServiceRuntime, producer: EventProducer) -> TrainingParts:
    """Migrate the database and add the training service's parts to ``runtime``.

    Raises when the database cannot be reached or migrated.
    """
    engine = create_engine(settings.sqlalchemy_url())
    runtime.add_cleanup(engine.dispose)
    await migrate(engine, MIGRATIONS)
    runtime.probes.readiness["database"] = lambda: ping(engine)

    runs = RunStore(engine, topic=settings.runs_topic)
    registry = Registry(engine, topic=settings.registry_topic, champion_alias=settings.champion_alias)
    relay = OutboxRelay(engine, producer, interval_s=settings.outbox_interval_seconds)
    model_server = TritonModelServer(settings.triton_grpc, timeout_s=settings.triton_timeout_seconds)
    deployer = Deployer(
        runs=runs,
        registry=registry,
        relay=relay,
        model_server=model_server,
        model_repository=settings.model_repository,
        triton_variant=settings.triton_variant,
        gpu_instances=settings.triton_gpu_instances,
    )
    restorer = AliasedModelLoader(registry, model_server, settings.model_repository)
    features = FeatureServiceClient(
        settings.feature_grpc,
        batch_rows=settings.feature_batch_rows,
        historical_timeout_s=settings.feature_timeout_seconds,
        token_file=settings.auth_token_file,
    )
    runtime.add_cleanup(features.close)
    pipeline = TrainingPipeline(
        PipelineConfig(
            lake_root=settings.lake_root(),
            artifacts_dir=settings.artifacts_dir(),
            champion_alias=settings.champion_alias,
            champion_auc_floor=settings.champion_auc_floor,
            torch_threads=settings.torch_threads,
        ),
        features=features,
        runs=runs,
        deployer=deployer,
    )
    worker = RunWorker(runs, pipeline, relay)
    api = TrainingServiceApi(worker=worker, runs=runs, registry=registry, deployer=deployer)
    policy = RetrainPolicy(settings.retrain_models, starter=worker, specs=runs)
    runtime.add_part("outbox-relay", relay.run, relay.stop)
    runtime.add_part("run-worker", worker.run, worker.stop)
    runtime.add_part("aliased-model-restore", restorer.run, restorer.stop)
    runtime.add_standard_parts(
        registrar=lambda server: training_pb2_grpc.add_TrainingServiceServicer_to_server(api, server),
        service_name=SERVICE_NAME,
        topics=settings.topics,
        handler=policy.handle,
        producer=producer,
        access=ACCESS,
    )
    return TrainingParts(api=api, runs=runs, registry=registry, worker=worker, relay=relay, restorer=restorer)


async def serve_training(settings: TrainingSettings) -> None:
    """Run the training service until SIGTERM."""

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        await wire_training(settings, runtime, producer)

    await serve(settings, version("aimesh-training"), wire, kafka_readiness=False)
