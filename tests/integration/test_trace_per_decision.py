"""One trace per decision, on the real stack: a Score's trace is found in Elasticsearch by the ``trace.id``
of its prediction document, with spans from ingest, feature, inference and monitor.

A private mesh (``tests.e2e.mesh.running_mesh``: the five services as processes, unique topics and
indices) exports its spans to a private OpenTelemetry Collector (the stack's build, run by
``aimesh.devstack.otelcol`` on free ports, writing a data stream of its own in the stack's
Elasticsearch). The test plays the upstream system: under one span of its own it publishes a sensor
reading to the source's Kafka topic (its ``traceparent`` in the record's headers) and, once the feature
service counted it, asks inference to Score the machine through the real feature service and Triton
(a python-backend model, registered by ModelEvents as training would). Then:

- the prediction document monitor indexed carries that span's trace id as ``trace.id``;
- the traces data stream holds, under that id, spans of the upstream test, ingest (the record's
  consumption, validation and publishing), feature (the update and the lookup's server span), inference
  (the Score server span, the lookup's client span, the Triton call, the Prediction's publishing) and
  monitor (the indexing), each span's parent in the same trace.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch
from opentelemetry.trace import Span, SpanKind, use_span
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.bus import EventProducer
from aimesh.core.channels import BearerToken, caller_token_file, open_caller_channel
from aimesh.core.tracing import build_provider, inject_headers
from aimesh.devstack.otelcol import OtelCollector
from aimesh.devstack.paths import Paths
from aimesh.devstack.triton import model_repository
from aimesh.feature.operations import apply_file
from aimesh.ingest.operations import apply_sources
from tests.e2e.mesh import ELASTICSEARCH, KAFKA, TRITON_GRPC, MeshUnderTest, indexed_predictions, running_mesh

pytestmark = [pytest.mark.integration]

SOURCES = """
sources:
  - name: readings
    topic: plant.readings
    entity_type: machine
    entity_key: machine_id
    event_id_field: reading_id
    event_time_field: timestamp
    fields:
      - {name: reading_id, type: string, required: true}
      - {name: machine_id, type: string, required: true}
      - {name: temperature, type: double, required: true}
      - {name: timestamp, type: timestamp, required: true}
"""
FEATURES = """
entities:
  - {name: machine, key: entity_key}
feature_views:
  - name: machine_stats
    entity: machine
    source: readings
    features:
      - {name: readings_24h, aggregation: count, window: 24h}
  - name: reading
    source: request
    features:
      - {name: temperature_now, aggregation: on_demand, expression: float(temperature)}
feature_services:
  - name: machine_v1
    features: [machine_stats:*, reading:*]
"""
INPUTS = ("readings_24h", "temperature_now")
"""The model's inputs: the feature service's column names (bare feature names)."""
MODEL_PY = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT__0").as_numpy().astype(np.float32)
            score = (x @ np.asarray([[0.5], [0.01]], dtype=np.float32)).astype(np.float32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT__0", score)]))
        return responses
"""
CONFIG = """
backend: "python"
max_batch_size: 64
input [{ name: "INPUT__0", data_type: TYPE_FP32, dims: [ 2 ] }]
output [{ name: "OUTPUT__0", data_type: TYPE_FP32, dims: [ 1 ] }]
"""
SERVICES = {"ingest", "feature", "inference", "monitor"}
TRACES = "traces-aimesh.it-default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtelCollector]:
    """A private collector (the stack's build, built here if missing) writing ``TRACES`` (kept: this
    Elasticsearch has no data stream API to delete it; each run's spans have trace ids of their own)."""
    stack = Paths.default()
    home = tmp_path_factory.mktemp("otelcol")
    paths = Paths(home=home, repo=stack.repo)
    paths.ensure()
    part = OtelCollector(
        paths,
        grpc_port=free_port(),
        http_port=free_port(),
        elasticsearch_url=ELASTICSEARCH,
        traces_index=TRACES,
        build_root=stack.dist / "otelcol",
    )
    part.install()
    part.start()
    try:
        part.wait_ready(60)
        yield part
    finally:
        part.stop()


@pytest.fixture
def mesh(tmp_path: Path, dev_auth: object, collector: OtelCollector) -> Iterator[MeshUnderTest]:
    """The private mesh, tracing to ``collector``; after ``dev_auth``, whose token it replaces by its own."""
    with running_mesh(
        tmp_path / "mesh",
        sources={"readings": "readings"},
        streams={},
        model_prefix="trace",
        extra_env={"AIMESH_OTLP_ENDPOINT": collector.endpoint},
    ) as running:
        yield running


def signature() -> signature_pb2.ModelSignature:
    numeric = signature_pb2.INPUT_KIND_NUMERIC
    return signature_pb2.ModelSignature(
        inputs=[signature_pb2.SignatureInput(name=name, kind=numeric, missing_value=0.0) for name in INPUTS],
        outputs=[
            signature_pb2.SignatureOutput(
                name="score", tensor="OUTPUT__0", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[1]
            )
        ],
        entity_types=["machine"],
        key_entity="machine",
        context_fields=[signature_pb2.ContextField(name="temperature", type=common_pb2.VALUE_TYPE_DOUBLE)],
    )


def export_model(name: str) -> Path:
    target = model_repository(Paths.default()) / name
    (target / "1").mkdir(parents=True)
    (target / "1" / "model.py").write_text(MODEL_PY)
    (target / "config.pbtxt").write_text(CONFIG)
    return target


async def register_model(mesh: MeshUnderTest, model: str, triton_name: str) -> None:
    """What training publishes for a new champion: the version with its signature, then the alias."""
    registered = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=1,
        triton_model_name=triton_name,
        triton_model_version=1,
        features=INPUTS,
        feature_service="machine_v1",
        signature=signature(),
    )
    alias = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=model,
        version=1,
        alias_change=training_pb2.AliasChange(model_name=model, alias="champion", new_version=1),
    )
    async with EventProducer(KAFKA, source="training") as producer:
        for event in (registered, alias):
            await producer.publish(mesh.topics["registry"], event, key=model)


async def readings_counted(mesh: MeshUnderTest, machine: str, within_s: float = 90.0) -> None:
    """Wait until the feature service counts a reading of ``machine`` (the update is durable)."""
    request = feature_pb2.GetOnlineFeaturesRequest(
        features=["machine_stats:readings_24h"], entity_rows=[feature_pb2.EntityRow(entity_ids={"machine": machine})]
    )
    deadline = time.monotonic() + within_s
    async with open_caller_channel(mesh.address.feature_grpc) as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        while True:
            try:
                reply = await stub.GetOnlineFeatures(request, timeout=5)
                count = reply.rows[0].values[0] if reply.rows else None
                if count is not None and count.status == feature_pb2.FEATURE_STATUS_PRESENT:
                    kind = count.value.WhichOneof("kind")
                    if kind is not None and getattr(count.value, kind) >= 1:
                        return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                    raise
            assert time.monotonic() < deadline, f"no reading of {machine} counted within {within_s}s"
            await asyncio.sleep(0.5)


async def until_routable(stub: inference_pb2_grpc.InferenceServiceStub, model: str, within_s: float = 90.0) -> None:
    """Wait until ``model`` is routable (GetModelSignature answers), untraced."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await stub.GetModelSignature(inference_pb2.GetModelSignatureRequest(model=model), timeout=5)
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                raise
            assert time.monotonic() < deadline, f"{model} not routable within {within_s}s"
            await asyncio.sleep(0.5)


async def index_exists(index: str, within_s: float = 60.0) -> None:
    """Wait until monitor created ``index`` (with its first document)."""
    deadline = time.monotonic() + within_s
    async with AsyncElasticsearch(ELASTICSEARCH) as es:
        while not await es.indices.exists(index=index):
            assert time.monotonic() < deadline, f"{index} not created within {within_s}s"
            await asyncio.sleep(0.5)


async def spans_of(index: str, trace_id: str, within_s: float = 60.0) -> list[dict[str, Any]]:
    """The span documents of ``trace_id``, polled until spans of every one of ``SERVICES`` are there."""
    deadline = time.monotonic() + within_s
    async with AsyncElasticsearch(ELASTICSEARCH) as es:
        while True:
            found: list[dict[str, Any]] = []
            if await es.indices.exists(index=index):
                await es.indices.refresh(index=index)
                reply = await es.search(index=index, query={"term": {"trace.id": trace_id}}, size=500)
                found = [hit["_source"] for hit in reply["hits"]["hits"]]
            if {s["service"]["name"] for s in found} >= SERVICES or time.monotonic() > deadline:
                return found
            await asyncio.sleep(1.0)


async def score_under(upstream: Span, address: str, request: inference_pb2.ScoreRequest) -> inference_pb2.ScoreResponse:
    """``Score`` as a direct child of ``upstream`` (ended after it): a channel without aimesh's client span,
    whose tracer is this process's global provider (set once, possibly by an earlier test, and not
    exporting to this test's collector), so the traceparent sent is ``upstream``'s own."""
    token_file = caller_token_file()
    with use_span(upstream, end_on_exit=True):
        metadata = list(inject_headers().items())
        if token_file is not None:
            metadata.append(("authorization", f"Bearer {BearerToken(token_file).value()}"))
        async with grpc.aio.insecure_channel(address) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            return await stub.Score(request, timeout=30, metadata=metadata)


async def decide(mesh: MeshUnderTest, collector: OtelCollector) -> tuple[str, str]:
    """Publish a reading and Score its machine under one upstream span; returns (trace id, request id)."""
    unique = mesh.unique
    triton_name = f"trace_it_{unique}"
    export_model(triton_name)
    triton = InferenceServerClient(url=TRITON_GRPC)
    try:
        await triton.load_model(triton_name, client_timeout=120.0)
    finally:
        await triton.close()
    await apply_sources(mesh.address.ingest_grpc, SOURCES, dry_run=False)
    await apply_file(mesh.address.feature_grpc, FEATURES, dry_run=False)
    model = f"machine_{unique}"
    await register_model(mesh, model, triton_name)

    provider = build_provider("upstream-test", collector.endpoint)
    upstream = provider.get_tracer(__name__).start_span("reading decision", kind=SpanKind.PRODUCER)
    machine, request_id = f"m-{unique}", f"trace-{unique}"
    reading = {
        "reading_id": f"r-{unique}",
        "machine_id": machine,
        "temperature": 71.5,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        with use_span(upstream):
            headers = [(k, v.encode()) for k, v in inject_headers().items()]
        await producer.send_and_wait(
            mesh.topics["readings"], orjson.dumps(reading), key=machine.encode(), headers=headers
        )
    finally:
        await producer.stop()
    await readings_counted(mesh, machine)
    async with open_caller_channel(mesh.address.inference_grpc) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        await until_routable(stub, model)
        request = inference_pb2.ScoreRequest(
            request_id=request_id,
            model=model,
            entity_ids={"machine": machine},
            context={"temperature": common_pb2.Value(double_value=71.5)},
        )
    reply = await score_under(upstream, mesh.address.inference_grpc, request)
    assert not reply.missing_features, list(reply.missing_features)
    assert np.isclose(reply.score, 0.5 * 1 + 0.01 * 71.5, atol=1e-4), reply
    provider.shutdown()
    trace_id = format(upstream.get_span_context().trace_id, "032x")
    return trace_id, request_id


def test_a_scores_trace_is_found_by_its_predictions_trace_id(mesh: MeshUnderTest, collector: OtelCollector) -> None:
    try:
        trace_id, request_id = asyncio.run(decide(mesh, collector))
        asyncio.run(index_exists(f"{mesh.address.index_prefix}-predictions"))
        documents = asyncio.run(indexed_predictions(ELASTICSEARCH, mesh.address.index_prefix, [request_id]))
        assert request_id in documents, "the prediction was not indexed"
        assert documents[request_id]["trace"]["id"] == trace_id
        spans = asyncio.run(spans_of(collector.traces_index, documents[request_id]["trace"]["id"]))
    finally:
        shutil.rmtree(model_repository(Paths.default()) / f"trace_it_{mesh.unique}", ignore_errors=True)
    by_service: dict[str, set[str]] = {}
    for span in spans:
        by_service.setdefault(span["service"]["name"], set()).add(span["span"]["name"])
    print("spans by service:", {k: sorted(v) for k, v in sorted(by_service.items())})
    assert set(by_service) >= SERVICES, f"spans only from {sorted(by_service)}"
    score = "/aimesh.api.inference.v1.InferenceService/Score"
    lookup = "/aimesh.api.feature.v1.FeatureService/GetOnlineFeatures"
    assert {f"ingest {mesh.topics['readings']}", "validate", f"{mesh.topics['records']} publish"} <= by_service[
        "ingest"
    ]
    assert {f"feature update {mesh.topics['records']}", lookup} <= by_service["feature"]
    assert {
        score,
        lookup,
        f"triton infer trace_it_{mesh.unique}",
        f"{mesh.topics['predictions']} publish",
    } <= by_service["inference"]
    assert "monitor index prediction" in by_service["monitor"]
    ids = {span["span"]["id"] for span in spans}
    orphans = [s["span"]["name"] for s in spans if "parent" in s and s["parent"]["id"] not in ids]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}"
    roots = [s["span"]["name"] for s in spans if "parent" not in s]
    assert roots == ["reading decision"], roots
