"""inference wiring: the InferenceService API (Score, ScoreBatch, Recommend), routing, Triton, features, predictions.

The registry topic is replayed from the earliest offset in a consumer group of this instance alone
(``<group>-routing-<uuid>``), so every replica builds the full routing table; the model reconciler
keeps every routed version loaded in Triton. Readiness: ``models`` (a routed version is loaded in
Triton, ``ModelReconciler.check_ready``) and ``feature-service`` (SERVING); Kafka is only a degraded
check (Prediction events wait for the broker, Score does not need it). On shutdown the gRPC server
drains first, then running shadow scorings (within half the grace period, the rest cancelled), then
pending Prediction acknowledgements (within the grace period), then the clients close.
"""

from __future__ import annotations

import uuid
from importlib.metadata import version

from aimesh.api.inference.v1 import inference_pb2_grpc
from aimesh.core.app import open_spooling_sender, serve
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.deadletter import dead_letter_publisher
from aimesh.core.feature_client import FeatureServiceClient
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.model_catalog import ModelCatalog
from aimesh.core.runner import ServiceRuntime
from aimesh.inference.access import ACCESS
from aimesh.inference.api import SERVICE_NAME, InferenceServiceApi, RequestLimits
from aimesh.inference.breaker import CircuitBreaker, ModelBreakers
from aimesh.inference.features import ServiceFeatureSource
from aimesh.inference.next_item import NextItemRanker
from aimesh.inference.predictions import PredictionPublisher
from aimesh.inference.reconciler import ModelReconciler
from aimesh.inference.scoring import Scorer
from aimesh.inference.settings import InferenceSettings
from aimesh.inference.shadows import ShadowTasks
from aimesh.inference.triton import TritonRunner


async def wire_inference(settings: InferenceSettings, runtime: ServiceRuntime, producer: EventProducer) -> Scorer:
    """Add the inference parts to ``runtime``; returns the scorer (tests drive it directly)."""
    catalog = ModelCatalog()
    features = ServiceFeatureSource(FeatureServiceClient(settings.feature_address, token_file=settings.auth_token_file))
    runner = TritonRunner(settings.triton_url)
    reconciler = ModelReconciler(
        catalog,
        runner,
        interval_s=settings.model_reconcile_interval_seconds,
        backoff_max_s=settings.model_load_backoff_max_seconds,
        load_timeout_s=settings.model_load_timeout_seconds,
        ready_without_routes=settings.ready_without_routed_models,
    )
    predictions = await open_spooling_sender(
        runtime, producer, settings, "predictions", max_bytes=settings.spool_max_bytes
    )
    publisher = PredictionPublisher(
        predictions,
        settings.predictions_topic,
        max_in_flight=settings.max_in_flight_predictions,
        wait_for_delivery=settings.prediction_delivery == "before_answer",
    )
    shadows = ShadowTasks(
        max_in_flight=settings.max_shadow_in_flight,
        timeout_s=settings.shadow_timeout_seconds,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown_s=settings.breaker_cooldown_seconds,
    )
    scorer = Scorer(
        catalog,
        features,
        runner,
        publisher,
        default_alias=settings.default_alias,
        shadows=shadows,
        fallback_reserve_s=settings.fallback_reserve_seconds,
        feature_breaker=CircuitBreaker(
            "the feature service", failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_seconds
        ),
        triton_breakers=ModelBreakers(
            "Triton", failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_seconds
        ),
    )
    ranker = NextItemRanker(
        catalog,
        features,
        runner,
        publisher,
        default_alias=settings.default_alias,
        shadows=shadows,
        fallback_reserve_s=settings.fallback_reserve_seconds,
        feature_breaker=scorer.feature_breaker,
        triton_breakers=scorer.triton_breakers,
    )
    limits = RequestLimits(
        id_bytes=settings.max_id_bytes,
        map_entries=settings.max_map_entries,
        request_items=settings.max_request_items,
    )
    api = InferenceServiceApi(scorer, ranker, max_batch_rows=settings.max_batch_rows, limits=limits)
    runtime.add_grpc(
        GrpcServer(
            settings,
            [lambda server: inference_pb2_grpc.add_InferenceServiceServicer_to_server(api, server)],
            [SERVICE_NAME],
            access=ACCESS,
        )
    )
    runtime.add_consumer(
        EventConsumer(
            settings.kafka_bootstrap,
            group_id=f"{settings.group_id}-routing-{uuid.uuid4().hex[:12]}",
            topics=settings.topics,
            handler=reconciler.handle,
            service=settings.service_name,
            dead_letters=dead_letter_publisher(producer, settings),
            auto_offset_reset="earliest",
        )
    )
    runtime.add_part("model-reconciler", reconciler.run, reconciler.stop)
    runtime.probes.readiness["models"] = reconciler.check_ready
    runtime.probes.readiness["feature-service"] = features.check_serving

    async def drain_predictions() -> None:
        await shadows.drain(settings.shutdown_grace_seconds / 2)
        await publisher.drain(settings.shutdown_grace_seconds)

    runtime.add_cleanup(runner.close)
    runtime.add_cleanup(features.close)
    runtime.add_cleanup(drain_predictions)
    return scorer


async def serve_inference(settings: InferenceSettings) -> None:
    """Run the inference service until SIGTERM."""

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        await wire_inference(settings, runtime, producer)

    await serve(settings, version("aimesh-inference"), wire, kafka_readiness=False)
