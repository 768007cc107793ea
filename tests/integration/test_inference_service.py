"""Inference against real Kafka and the real Triton, with an in-process fake FeatureService.

What it proves: a ModelEvent with a signature on a (unique) registry topic makes the model routable and
GetModelSignature returns that signature; Score over gRPC returns exactly what the model computes
(numpy, within 1e-5) from the feature service's values (a categorical one encoded by its vocabulary, a
missing one fed the signature's fill) and the caller's inline values (full or bare names), every output
tensor by its signature name (a vector one too), the values' freshness, and a Prediction event with the
same event id keyed by the signature's key entity reaches the predictions topic; requests the signature
refuses (missing entity, mistyped context, unknown inline key) are INVALID_ARGUMENT naming the field; a
version registered without a signature is scored by the fallback one; unknown alias/model is NOT_FOUND,
a feature-service INVALID_ARGUMENT comes back as is, a slow feature service gives UNAVAILABLE naming it
before the caller's deadline (the model has no fallback), a
version Triton does not serve gives UNAVAILABLE. ScoreBatch of 50 rows and a refused one is one feature
request and one Triton execution (Triton's own statistics), each score what the model computes, the
refused row its own INVALID_ARGUMENT, and 257 rows are refused naming the limit. It also measures Score
latency over 500 sequential calls. A second test runs inference against a PRIVATE Triton (own ports and
repository) and a fake feature service it restarts: the model reconciler loads the champion, and loads it again after a
kill -9 and restart of that Triton; readiness names what is missing meanwhile; the numbers are printed.
Uses a uniquely named python-backend model (the linear_scorer sample with a second, vector output;
loaded, then unloaded) and unique topics and groups.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
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

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import stop as stop_process
from aimesh.devstack.triton import Triton
from aimesh.inference.app import wire_inference
from aimesh.inference.settings import InferenceSettings

pytestmark = [pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MODEL = REPO_ROOT / "deploy" / "local" / "triton" / "models" / "linear_scorer"
FEATURES = ("account_stats:f1", "account_stats:segment", "user_stats:f3", "request:f4")
SEGMENTS = ["gold", "silver"]
ACCOUNT_VALUES: dict[str, tuple[float, str, float | None, float]] = {
    "a-1": (0.5, "silver", -1.0, 3.0),
    "a-2": (1.5, "gold", None, 0.0),
}
"""Online values per account; None is MISSING."""
F3_FILL = 0.25
HEAD = 3
MODEL_PY = """
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        self.weights = np.asarray(
            [float(v) for v in params["weights"]["string_value"].split(",")], dtype=np.float32
        ).reshape(4, 1)
        self.bias = np.float32(params["bias"]["string_value"])

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT__0").as_numpy().astype(np.float32)
            score = (x @ self.weights + self.bias).astype(np.float32)
            head = (x[:, :3] * 2.0 + 1.0).astype(np.float32)
            tensors = [pb_utils.Tensor("OUTPUT__0", score), pb_utils.Tensor("OUTPUT__1", head)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
"""
CONFIG = """
backend: "python"
max_batch_size: 64
dynamic_batching {}
instance_group [{ kind: KIND_CPU, count: 1 }]
input [{ name: "INPUT__0", data_type: TYPE_FP32, dims: [ 4 ] }]
output [
  { name: "OUTPUT__0", data_type: TYPE_FP32, dims: [ 1 ] },
  { name: "OUTPUT__1", data_type: TYPE_FP32, dims: [ 3 ] }
]
parameters [
  { key: "weights", value: { string_value: "%s" } },
  { key: "bias", value: { string_value: "%s" } }
]
"""


def model_signature() -> signature_pb2.ModelSignature:
    """Entities account + user (key account), context amount (DOUBLE), a categorical input, a vector output."""
    numeric = signature_pb2.INPUT_KIND_NUMERIC
    return signature_pb2.ModelSignature(
        inputs=[
            signature_pb2.SignatureInput(name=FEATURES[0], kind=numeric, missing_value=0.0),
            signature_pb2.SignatureInput(
                name=FEATURES[1], kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=SEGMENTS
            ),
            signature_pb2.SignatureInput(name=FEATURES[2], kind=numeric, missing_value=F3_FILL),
            signature_pb2.SignatureInput(name=FEATURES[3], kind=numeric, missing_value=0.0),
        ],
        outputs=[
            signature_pb2.SignatureOutput(
                name="score", tensor="OUTPUT__0", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[1], meaning="P(x)"
            ),
            signature_pb2.SignatureOutput(
                name="head", tensor="OUTPUT__1", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[HEAD]
            ),
        ],
        entity_types=["account", "user"],
        key_entity="account",
        context_fields=[signature_pb2.ContextField(name="amount", type=common_pb2.VALUE_TYPE_DOUBLE)],
        task=signature_pb2.TASK_BINARY_CLASSIFICATION,
        input_tensor="INPUT__0",
        trainer="test",
    )


def encoded(account: str, **inline: float) -> tuple[float, ...]:
    """The input row the signature makes of ``account``'s online values and ``inline`` (by bare name)."""
    f1, segment, f3, f4 = ACCOUNT_VALUES[account]
    row = [f1, float(SEGMENTS.index(segment) + 1), F3_FILL if f3 is None else f3, f4]
    for key, value in inline.items():
        row[[f.rpartition(":")[2] for f in FEATURES].index(key)] = value
    return tuple(row)


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
    """Answers lookups from ACCOUNT_VALUES (event times 60 s before the as-of time); account 'missing' is
    INVALID_ARGUMENT, 'slow' sleeps 2 s."""

    def __init__(self) -> None:
        self.requests: list[feature_pb2.GetOnlineFeaturesRequest] = []

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        self.requests.append(request)
        rows = []
        for index, row in enumerate(request.entity_rows):
            account = row.entity_ids.get("account", "")
            if account == "slow":
                await asyncio.sleep(2.0)
            if account not in ACCOUNT_VALUES:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"entity account {account!r} has no history")
            values = []
            for v in ACCOUNT_VALUES[account]:
                if v is None:
                    values.append(feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING))
                    continue
                fv = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT)
                if isinstance(v, str):
                    fv.value.string_value = v
                else:
                    fv.value.double_value = v
                fv.event_time.CopyFrom(row.timestamp)
                fv.event_time.seconds -= 60
                values.append(fv)
            rows.append(feature_pb2.OnlineFeatureRow(entity_id=account, values=values, row_index=index))
        return feature_pb2.GetOnlineFeaturesResponse(feature_names=FEATURES, rows=rows)


@dataclass
class Model:
    name: str
    weights: np.ndarray
    bias: np.float32

    def expected(self, row: tuple[float, ...]) -> float:
        x = np.asarray([row], dtype=np.float32)
        return float((x @ self.weights + self.bias).reshape(-1)[0])

    def head(self, row: tuple[float, ...]) -> list[float]:
        x = np.asarray([row], dtype=np.float32)
        return [float(v) for v in (x[:, :HEAD] * 2.0 + 1.0).reshape(-1)]


def export_model(repository: Path, name: str) -> Model:
    """Write the test's python-backend model (random weights) as ``repository/name``; returns its maths."""
    rng = np.random.default_rng()
    weights = rng.uniform(-2.0, 2.0, size=(4, 1)).astype(np.float32)
    bias = np.float32(rng.uniform(-1.0, 1.0))
    target = repository / name
    shutil.copytree(SAMPLE_MODEL, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "1" / "model.py").write_text(MODEL_PY)
    (target / "config.pbtxt").write_text(
        CONFIG % (",".join(repr(float(w)) for w in weights.ravel()), repr(float(bias)))
    )
    return Model(name, weights, bias)


@pytest.fixture
async def triton_model(endpoints: Any) -> AsyncIterator[Model]:
    name = f"inference_it_{uuid.uuid4().hex[:8]}"
    model = export_model(model_repo(), name)
    client = InferenceServerClient(url=endpoints.triton_grpc)
    try:
        await client.load_model(name, client_timeout=120.0)
        yield model
    finally:
        await client.unload_model(name, client_timeout=60.0)
        await client.close()
        shutil.rmtree(model_repo() / name, ignore_errors=True)


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


def registered(
    model: str, version: int, triton_name: str, signature: signature_pb2.ModelSignature | None
) -> events_pb2.ModelEvent:
    event = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=version,
        triton_model_name=triton_name,
        triton_model_version=1,
        features=FEATURES,
        feature_service="risk_v1",
    )
    if signature is not None:
        event.signature.CopyFrom(signature)
    return event


def champion(model: str, version: int) -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=model,
        version=version,
        alias_change=training_pb2.AliasChange(model_name=model, alias="champion", new_version=version),
    )


def score_request(account: str = "a-1", **fields: Any) -> inference_pb2.ScoreRequest:
    request = inference_pb2.ScoreRequest(entity_ids={"account": account, "user": "u-1"}, **fields)
    request.context["amount"].double_value = 42.0
    return request


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
    await wire_inference(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    model = f"risk_{unique}"
    try:
        await asyncio.sleep(0.5)
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.Score(score_request(model=model), timeout=5)
        assert empty.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no model is registered yet" in (empty.value.details() or "")

        for event in (registered(model, 1, triton_model.name, model_signature()), champion(model, 1)):
            await producer.publish(registry, event, key=model)
        request = score_request(request_id=f"req-{unique}", model=model)
        response = await _score_when_routable(stub, request)
        row = encoded("a-1")
        assert response.score == pytest.approx(triton_model.expected(row), abs=1e-5)
        assert set(response.outputs) == {"score", "head"}
        assert list(response.outputs["score"].values) == [response.score]
        assert list(response.outputs["head"].values) == pytest.approx(triton_model.head(row), abs=1e-5)
        assert (response.model_name, response.model_version) == (model, 1)
        assert response.route == inference_pb2.ROUTE_CHAMPION
        assert response.prediction_delivery == inference_pb2.PREDICTION_DELIVERY_PENDING, "the default: background"
        assert 59.0 <= response.feature_freshness_seconds < 70.0
        assert list(response.missing_features) == []
        sent = fake.requests[-1]
        assert sent.feature_service == "risk_v1"
        assert dict(sent.entity_rows[0].entity_ids) == {"account": "a-1", "user": "u-1"}
        assert sent.entity_rows[0].request_context["amount"].double_value == 42.0

        described = await stub.GetModelSignature(inference_pb2.GetModelSignatureRequest(model=model), timeout=5)
        assert (described.model_name, described.model_version) == (model, 1)
        assert described.signature == model_signature()

        pinned = await stub.Score(score_request("a-2", model=model, features={"f4": 9.0}, version=1), timeout=5)
        assert pinned.route == inference_pb2.ROUTE_PINNED
        assert pinned.score == pytest.approx(triton_model.expected(encoded("a-2", f4=9.0)), abs=1e-5)
        assert list(pinned.missing_features) == ["user_stats:f3"], "a MISSING value is fed the signature's fill"

        await _check_score_batch(stub, endpoints, model, triton_model, fake, predictions)

        prediction, key = await _find_prediction(endpoints.kafka_bootstrap, predictions, response.event_id)
        assert key == b"a-1", "Prediction events are keyed by the signature's key entity"
        assert prediction.request_id == f"req-{unique}"
        assert prediction.score == pytest.approx(response.score)
        assert dict(prediction.features) == pytest.approx(dict(zip(FEATURES, row, strict=True)))
        assert dict(prediction.entity_ids)["account"] == "a-1"

        no_user = score_request(model=model)
        del no_user.entity_ids["user"]
        await _expect(stub, no_user, grpc.StatusCode.INVALID_ARGUMENT, "entity_ids['user'] is missing")
        mistyped = score_request(model=model)
        mistyped.context["amount"].string_value = "42"
        await _expect(
            stub,
            mistyped,
            grpc.StatusCode.INVALID_ARGUMENT,
            "context['amount'] is a string_value, expected a number (double_value or int64_value)",
        )
        await _expect(
            stub,
            score_request(model=model, features={"f9": 1.0}),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"features 'f9' match no input of model {model!r} v1; its inputs: {', '.join(FEATURES)}",
        )
        await _expect(
            stub,
            score_request(model=model, alias="canary"),
            grpc.StatusCode.NOT_FOUND,
            "aliases: champion -> 1",
        )
        await _expect(stub, score_request(model="nope"), grpc.StatusCode.NOT_FOUND, model)
        crowded = score_request(model=model)
        for i in range(65):
            crowded.context[f"extra_{i}"].double_value = 1.0
        await _expect(stub, crowded, grpc.StatusCode.INVALID_ARGUMENT, "context holds 66 entries; the limit is 64")
        await _expect(
            stub,
            score_request(model=model, request_id="r" * 257),
            grpc.StatusCode.INVALID_ARGUMENT,
            "request_id is 257 bytes long; the limit is 256 bytes",
        )
        long_id = score_request(model=model)
        long_id.entity_ids["account"] = "a" * 257
        await _expect(
            stub, long_id, grpc.StatusCode.INVALID_ARGUMENT, "entity_ids['account'] is 257 bytes long; the limit is 256"
        )
        inf_feature = score_request(model=model, features={"account_stats:f1": float("inf")})
        await _expect(
            stub,
            inf_feature,
            grpc.StatusCode.INVALID_ARGUMENT,
            "features['account_stats:f1'] is inf, expected a finite number",
        )
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.GetModelSignature(inference_pb2.GetModelSignatureRequest(model=model, version=7), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert "registered versions: 1" in (unknown.value.details() or "")
        await _expect(
            stub,
            score_request("missing", model=model),
            grpc.StatusCode.INVALID_ARGUMENT,
            "feature service: entity account 'missing' has no history",
        )
        await _expect(
            stub,
            score_request("slow", model=model),
            grpc.StatusCode.UNAVAILABLE,
            "the feature service did not answer within",
            timeout=0.3,
        )

        await producer.publish(registry, registered(model, 2, f"not_loaded_{unique}", None), key=model)
        await producer.publish(registry, registered(model, 3, triton_model.name, None), key=model)
        legacy = await _score_when_routable(stub, score_request(model=model, version=3))
        assert legacy.score == pytest.approx(triton_model.expected((0.5, 0.0, -1.0, 3.0)), abs=1e-5)
        assert list(legacy.outputs) == ["score"]
        assert list(legacy.missing_features) == ["account_stats:segment"], (
            "the fallback signature has numeric inputs only: a string is missing, fed 0.0"
        )
        await _expect(
            stub,
            score_request(model=model, version=2),
            grpc.StatusCode.UNAVAILABLE,
            "not_loaded",
        )

        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{settings.admin_port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text

        latencies = []
        for i in range(500):
            started = time.perf_counter()
            await stub.Score(score_request(("a-1", "a-2")[i % 2], model=model), timeout=5)
            latencies.append(time.perf_counter() - started)
        p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
        print(f"Score latency over 500 sequential calls: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        record_property("score_p50_ms", round(p50, 2))
        record_property("score_p99_ms", round(p99, 2))
    finally:
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)


async def _triton_counts(endpoints: Any, name: str) -> tuple[int, int]:
    """(executions, inferences) Triton counted for model ``name``: model calls and rows."""
    client = InferenceServerClient(url=endpoints.triton_grpc)
    try:
        stats = await client.get_inference_statistics(name, as_json=True)
    finally:
        await client.close()
    [model_stats] = stats["model_stats"]
    return int(model_stats.get("execution_count", 0)), int(model_stats.get("inference_count", 0))


async def _check_score_batch(
    stub: inference_pb2_grpc.InferenceServiceStub,
    endpoints: Any,
    model: str,
    triton_model: Model,
    fake: FakeFeatureService,
    predictions: str,
) -> None:
    """ScoreBatch of 50 good rows and one refused: one feature request, one Triton execution of 50 rows,
    each score what the model computes, the refused row's own status, a Prediction per scored row; 257
    rows are INVALID_ARGUMENT naming the limit."""
    rows = []
    for j in range(50):
        row = inference_pb2.ScoreBatchRow(
            request_id=f"batch-{j}", entity_ids={"account": ("a-1", "a-2")[j % 2], "user": "u-1"}, features={"f4": j}
        )
        row.context["amount"].double_value = 42.0
        rows.append(row)
    refused = inference_pb2.ScoreBatchRow(entity_ids={"account": "a-1"})
    refused.context["amount"].double_value = 42.0
    executions, inferences = await _triton_counts(endpoints, triton_model.name)
    lookups = len(fake.requests)
    batch = await stub.ScoreBatch(
        inference_pb2.ScoreBatchRequest(model=model, rows=[*rows[:20], refused, *rows[20:]]), timeout=10
    )
    assert await _triton_counts(endpoints, triton_model.name) == (executions + 1, inferences + 50)
    assert len(fake.requests) == lookups + 1 and len(fake.requests[-1].entity_rows) == 50
    assert (batch.model_name, batch.model_version, batch.route) == (model, 1, inference_pb2.ROUTE_CHAMPION)
    results = list(batch.results)
    assert results[20].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "entity_ids['user'] is missing" in results[20].message
    scored = results[:20] + results[21:]
    assert [r.code for r in scored] == [0] * 50
    for j, result in enumerate(scored):
        expected = triton_model.expected(encoded(("a-1", "a-2")[j % 2], f4=float(j)))
        assert result.response.request_id == f"batch-{j}"
        assert result.response.score == pytest.approx(expected, abs=1e-5)
    prediction, key = await _find_prediction(endpoints.kafka_bootstrap, predictions, scored[7].response.event_id)
    assert (prediction.request_id, key) == ("batch-7", b"a-2")
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await stub.ScoreBatch(inference_pb2.ScoreBatchRequest(model=model, rows=[rows[0]] * 257), timeout=10)
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rows holds 257 rows; a batch holds 1 to 256" in (too_many.value.details() or "")


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


async def _find_prediction(
    bootstrap: str, topic: str, event_id: str
) -> tuple[inference_events.Prediction, bytes | None]:
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
                        return inference_events.Prediction.FromString(record.value), record.key
        pytest.fail(f"no Prediction with event id {event_id} on {topic} within 20 s")
    finally:
        await consumer.stop()


async def start_feature_service(fake: FakeFeatureService, port: int) -> grpc.aio.Server:
    """The fake FeatureService (SERVING) on ``127.0.0.1:port`` (0: any free port)."""
    server = grpc.aio.server()
    feature_pb2_grpc.add_FeatureServiceServicer_to_server(fake, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("aimesh.api.feature.v1.FeatureService", health_pb2.HealthCheckResponse.SERVING)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    assert port in (0, bound)
    await server.start()
    server.port = bound  # type: ignore[attr-defined]
    return server


@pytest.fixture
def private_triton(tmp_path: Path) -> Iterator[Triton]:
    """A Triton of this test alone (own ports, own model repository); the shared one is never touched."""
    paths = Paths(home=tmp_path / "aimesh", repo=REPO_ROOT)
    paths.ensure()
    triton = Triton(paths, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), exit_timeout_s=2)
    triton.install()
    try:
        yield triton
    finally:
        triton.stop()


async def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    return response.status_code, response.json()


async def _seconds_until_score_ok(
    stub: inference_pb2_grpc.InferenceServiceStub,
    request: inference_pb2.ScoreRequest,
    limit_s: float,
    *,
    routing: bool = False,
) -> tuple[float, inference_pb2.ScoreResponse, list[str]]:
    """Score every 50 ms (1 s deadline) until one succeeds: (seconds taken, the answer, the failures seen).

    Every failure meanwhile must be UNAVAILABLE; with ``routing`` (the model's registry events were just
    published) NOT_FOUND too, since the routing table applies them one by one (the version known, its
    alias not yet)."""
    pending = {grpc.StatusCode.UNAVAILABLE, *([grpc.StatusCode.NOT_FOUND] if routing else [])}
    started = time.monotonic()
    failures: list[str] = []
    while True:
        try:
            return time.monotonic() - started, await stub.Score(request, timeout=1.0), failures
        except grpc.aio.AioRpcError as exc:
            failures.append(f"{exc.code().name}: {exc.details()}")
            assert exc.code() in pending, failures[-1]
            assert time.monotonic() - started < limit_s, f"Score still failing after {limit_s}s: {failures[-1]}"
            await asyncio.sleep(0.05)


async def _until_ready(port: int, want: int, limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        status, body = await _readyz(port)
        if status == want:
            return body
        assert time.monotonic() < deadline, f"/readyz stayed {status} {body}, wanted {want}"
        await asyncio.sleep(0.2)


async def test_score_recovers_by_itself_after_triton_and_the_feature_service_restart(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    private_triton: Triton,
    record_property: Callable[[str, object], None],
) -> None:
    """The reconciler loads the champion into a Triton that has never seen it, and again after that Triton
    is killed (-9) and restarted; the feature service's channel reconnects within about a second of its
    return. Readiness is 503 naming what is missing while either is down, 200 when both are back."""
    triton_name = f"restart_it_{unique}"
    model = export_model(private_triton.model_repository, triton_name)
    await asyncio.to_thread(private_triton.start)
    await asyncio.to_thread(private_triton.wait_ready, 120)
    fake = FakeFeatureService()
    features = await start_feature_service(fake, 0)
    feature_port: int = features.port  # type: ignore[attr-defined]
    registry = await make_topic("registry", partitions=1)
    settings = InferenceSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-inference-restart-{unique}",
        topics=[registry],
        predictions_topic=await make_topic("predictions"),
        triton_url=private_triton.grpc_target,
        feature_address=f"127.0.0.1:{feature_port}",
        shutdown_grace_seconds=2.0,
        readiness_interval_seconds=0.5,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    await wire_inference(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    name = f"risk_{unique}"
    request = score_request(model=name)
    expected = model.expected(encoded("a-1"))
    try:
        for event in (registered(name, 1, triton_name, model_signature()), champion(name, 1)):
            await producer.publish(registry, event, key=name)
        first_load, answer, _ = await _seconds_until_score_ok(stub, request, limit_s=60, routing=True)
        assert answer.score == pytest.approx(expected, abs=1e-5)
        await _until_ready(settings.admin_port, 200, limit_s=10)
        print(f"champion served {first_load:.1f} s after its registry events (never loaded in this Triton before)")

        await asyncio.to_thread(stop_process, private_triton.pidfile, grace=5.0, sig=signal.SIGKILL)
        down = await _until_ready(settings.admin_port, 503, limit_s=10)
        assert set(down["failed"]) == {"models"}, down
        assert (
            f"{name} version 1 (alias champion) -> Triton {triton_name!r} version 1 not loaded in Triton"
            in (down["failed"]["models"])
        )
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as during:
            await stub.Score(request, timeout=1.0)
        failed_in = time.monotonic() - started
        assert during.value.code() == grpc.StatusCode.UNAVAILABLE
        assert failed_in < 0.9, "a Score while Triton is down fails at once, it does not wait for its deadline"
        print(f"Triton down: Score answers UNAVAILABLE in {failed_in * 1000:.0f} ms: {during.value.details()}")

        restarted = time.monotonic()
        await asyncio.to_thread(private_triton.start)
        await asyncio.to_thread(private_triton.wait_ready, 120)
        triton_ready = time.monotonic()
        took, answer, failures = await _seconds_until_score_ok(stub, request, limit_s=30)
        assert answer.score == pytest.approx(expected, abs=1e-5)
        await _until_ready(settings.admin_port, 200, limit_s=10)
        print(
            f"Triton kill -9 + restart: Triton ready {triton_ready - restarted:.1f} s after its start, champion "
            f"served again {took:.1f} s after Triton was ready ({len(failures)} UNAVAILABLE answers meanwhile)"
        )
        record_property("score_ok_after_triton_ready_s", round(took, 2))
        assert took < 5.0, "the reconciler probes every 0.5 s while Triton is silent and loads as soon as it answers"

        await features.stop(0)
        down = await _until_ready(settings.admin_port, 503, limit_s=10)
        assert set(down["failed"]) == {"feature-service"}, down
        with pytest.raises(grpc.aio.AioRpcError) as no_features:
            await stub.Score(request, timeout=1.0)
        assert no_features.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "feature service" in (no_features.value.details() or "")
        await asyncio.sleep(5.0)  # long enough for gRPC's default backoff to have grown past 2 s
        features = await start_feature_service(fake, feature_port)
        took, answer, _ = await _seconds_until_score_ok(stub, request, limit_s=10)
        print(f"feature service down 5 s: Score OK again {took:.2f} s after it was back")
        record_property("score_ok_after_feature_service_back_s", round(took, 2))
        assert took < 2.0
        await _until_ready(settings.admin_port, 200, limit_s=10)
    finally:
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)
        await features.stop(0)
