"""Inference against real Kafka and the real Triton, with an in-process fake FeatureService.

What it proves: a ModelEvent on a (unique) registry topic makes the model routable; Score over gRPC
returns exactly what the model computes (numpy, within 1e-5) from the feature service's values and
the caller's overrides, and a Prediction event with the same event id reaches the predictions topic;
unknown alias/model is NOT_FOUND, a feature-service INVALID_ARGUMENT comes back as is, a slow feature
service gives DEADLINE_EXCEEDED, a version Triton does not serve gives UNAVAILABLE. It also measures
Score latency over 500 sequential calls. Uses a uniquely named copy of the linear_scorer sample model
(loaded, then unloaded) and unique topics and groups.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.runner import ServiceRuntime
from aimesh.inference.app import wire_inference
from aimesh.inference.settings import InferenceSettings

pytestmark = [pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MODEL = REPO_ROOT / "deploy" / "local" / "triton" / "models" / "linear_scorer"
FEATURES = ("card_stats:f1", "card_stats:f2", "customer_stats:f3", "payment:f4")
CARD_VALUES = {"c-1": (0.5, 2.0, -1.0, 3.0), "c-2": (1.5, -0.25, 4.0, 0.0)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_repo() -> Path:
    import os

    if "AIMESH_TRITON_MODEL_REPO" in os.environ:
        return Path(os.environ["AIMESH_TRITON_MODEL_REPO"])
    return Path(os.environ.get("AIMESH_HOME", REPO_ROOT / ".aimesh")) / "data" / "triton" / "models"


class FakeFeatureService(feature_pb2_grpc.FeatureServiceServicer):
    """Answers fraud_v1 lookups from CARD_VALUES; card 'missing' is INVALID_ARGUMENT, 'slow' sleeps 2 s."""

    def __init__(self) -> None:
        self.requests: list[feature_pb2.GetOnlineFeaturesRequest] = []

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        self.requests.append(request)
        row = request.entity_rows[0]
        card = row.entity_ids.get("card", "")
        if card == "slow":
            await asyncio.sleep(2.0)
        if card not in CARD_VALUES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"entity card {card!r} has no history")
        values = []
        for v in CARD_VALUES[card]:
            fv = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT)
            fv.value.double_value = v
            fv.event_time.CopyFrom(row.timestamp)
            fv.event_time.seconds -= 60
            values.append(fv)
        return feature_pb2.GetOnlineFeaturesResponse(
            feature_names=FEATURES, rows=[feature_pb2.OnlineFeatureRow(entity_id=card, values=values, row_index=0)]
        )


@dataclass
class Model:
    name: str
    weights: np.ndarray
    bias: np.float32

    def expected(self, row: tuple[float, ...]) -> float:
        x = np.asarray([row], dtype=np.float32)
        return float((x @ self.weights + self.bias).reshape(-1)[0])


@pytest.fixture
async def triton_model(endpoints: Any) -> AsyncIterator[Model]:
    name = f"inference_it_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng()
    weights = rng.uniform(-2.0, 2.0, size=(4, 1)).astype(np.float32)
    bias = np.float32(rng.uniform(-1.0, 1.0))
    target = model_repo() / name
    shutil.copytree(SAMPLE_MODEL, target, ignore=shutil.ignore_patterns("__pycache__"))
    config = target / "config.pbtxt"
    text = config.read_text()
    for key, value in (("weights", ",".join(repr(float(w)) for w in weights.ravel())), ("bias", repr(float(bias)))):
        text = re.sub(rf'(key: "{key}"\s*value: \{{ string_value: )"[^"]*"', rf'\g<1>"{value}"', text)
    config.write_text(text)
    client = InferenceServerClient(url=endpoints.triton_grpc)
    try:
        await client.load_model(name, client_timeout=120.0)
        yield Model(name, weights, bias)
    finally:
        await client.unload_model(name, client_timeout=60.0)
        await client.close()
        shutil.rmtree(target, ignore_errors=True)


@pytest.fixture
async def feature_service() -> AsyncIterator[tuple[str, FakeFeatureService]]:
    server = grpc.aio.server()
    fake = FakeFeatureService()
    feature_pb2_grpc.add_FeatureServiceServicer_to_server(fake, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("aimesh.api.feature.v1.FeatureService", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", fake
    finally:
        await server.stop(0)


def model_events(model: str, version: int, triton_name: str) -> list[events_pb2.ModelEvent]:
    return [
        events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
            model_name=model,
            version=version,
            triton_model_name=triton_name,
            triton_model_version=1,
            features=FEATURES,
            feature_service="fraud_v1",
        ),
        events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
            model_name=model,
            version=version,
            alias_change=training_pb2.AliasChange(model_name=model, alias="champion", new_version=version),
        ),
    ]


async def test_score_end_to_end(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    triton_model: Model,
    feature_service: tuple[str, FakeFeatureService],
    record_property: Callable[[str, object], None],
) -> None:
    registry = await make_topic("registry", partitions=1)
    predictions = await make_topic("predictions")
    feature_address, fake = feature_service
    settings = InferenceSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-inference-{unique}",
        topics=[registry],
        predictions_topic=predictions,
        triton_url=endpoints.triton_grpc,
        feature_address=feature_address,
        shutdown_grace_seconds=2.0,
        readiness_interval_seconds=0.5,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    runtime.probes.readiness["kafka"] = producer.check_connected
    await wire_inference(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    model = f"fraud_{unique}"
    try:
        await asyncio.sleep(0.5)
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.Score(inference_pb2.ScoreRequest(model=model, entity_ids={"card": "c-1"}), timeout=5)
        assert empty.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no model is registered yet" in (empty.value.details() or "")

        for event in model_events(model, 1, triton_model.name):
            await producer.publish(registry, event, key=model)
        request = inference_pb2.ScoreRequest(
            request_id=f"req-{unique}", model=model, entity_ids={"card": "c-1", "customer": "u-1"}
        )
        request.context["amount"].double_value = 42.0
        response = await _score_when_routable(stub, request)
        assert response.score == pytest.approx(triton_model.expected(CARD_VALUES["c-1"]), abs=1e-5)
        assert (response.model_name, response.model_version) == (model, 1)
        assert response.route == inference_pb2.ROUTE_CHAMPION
        assert 59.0 <= response.feature_freshness_seconds < 70.0
        assert list(response.missing_features) == []
        sent = fake.requests[-1]
        assert sent.feature_service == "fraud_v1"
        assert dict(sent.entity_rows[0].entity_ids) == {"card": "c-1", "customer": "u-1"}
        assert sent.entity_rows[0].request_context["amount"].double_value == 42.0

        override = inference_pb2.ScoreRequest(
            model=model, entity_ids={"card": "c-2"}, features={"payment:f4": 9.0}, version=1
        )
        pinned = await stub.Score(override, timeout=5)
        assert pinned.route == inference_pb2.ROUTE_PINNED
        assert pinned.score == pytest.approx(triton_model.expected((*CARD_VALUES["c-2"][:3], 9.0)), abs=1e-5)

        prediction = await _find_prediction(endpoints.kafka_bootstrap, predictions, response.event_id)
        assert prediction.request_id == f"req-{unique}"
        assert prediction.score == pytest.approx(response.score)
        assert dict(prediction.features) == pytest.approx(dict(zip(FEATURES, CARD_VALUES["c-1"], strict=True)))
        assert dict(prediction.entity_ids)["card"] == "c-1"

        await _expect(
            stub,
            inference_pb2.ScoreRequest(model=model, alias="canary", entity_ids={"card": "c-1"}),
            grpc.StatusCode.NOT_FOUND,
            "aliases: champion -> 1",
        )
        await _expect(
            stub, inference_pb2.ScoreRequest(model="nope", entity_ids={"card": "c-1"}), grpc.StatusCode.NOT_FOUND, model
        )
        await _expect(
            stub,
            inference_pb2.ScoreRequest(model=model, entity_ids={"card": "missing"}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "feature service: entity card 'missing' has no history",
        )
        await _expect(
            stub,
            inference_pb2.ScoreRequest(model=model, entity_ids={"card": "slow"}),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "",
            timeout=0.3,
        )

        for event in model_events(model, 2, f"not_loaded_{unique}")[:1]:
            await producer.publish(registry, event, key=model)
        await asyncio.sleep(1.0)
        await _expect(
            stub,
            inference_pb2.ScoreRequest(model=model, version=2, entity_ids={"card": "c-1"}),
            grpc.StatusCode.UNAVAILABLE,
            "not_loaded",
        )

        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{settings.admin_port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text

        latencies = []
        for i in range(500):
            started = time.perf_counter()
            await stub.Score(
                inference_pb2.ScoreRequest(model=model, entity_ids={"card": ("c-1", "c-2")[i % 2]}), timeout=5
            )
            latencies.append(time.perf_counter() - started)
        p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
        print(f"Score latency over 500 sequential calls: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        record_property("score_p50_ms", round(p50, 2))
        record_property("score_p99_ms", round(p99, 2))
    finally:
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)


async def _score_when_routable(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ScoreRequest
) -> inference_pb2.ScoreResponse:
    deadline = time.monotonic() + 30
    while True:
        try:
            return await stub.Score(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            if (
                exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
                or time.monotonic() > deadline
            ):
                raise
            await asyncio.sleep(0.2)


async def _expect(
    stub: inference_pb2_grpc.InferenceServiceStub,
    request: inference_pb2.ScoreRequest,
    code: grpc.StatusCode,
    text: str,
    timeout: float = 5.0,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Score(request, timeout=timeout)
    assert failure.value.code() == code, failure.value.details()
    assert text in (failure.value.details() or "")


async def _find_prediction(bootstrap: str, topic: str, event_id: str) -> inference_events.Prediction:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("ce_id") == event_id.encode():
                        assert headers["ce_type"] == b"aimesh.api.inference.v1.Prediction"
                        return inference_events.Prediction.FromString(record.value)
        pytest.fail(f"no Prediction with event id {event_id} on {topic} within 20 s")
    finally:
        await consumer.stop()
