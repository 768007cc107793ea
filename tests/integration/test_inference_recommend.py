"""Recommend against real Kafka and the real Triton, with an in-process fake FeatureService.

What it proves: a ``TASK_NEXT_ITEM`` model exported through the training service's export code
(``tests/integration/next_item_model.py``: the ``sequence_next_item`` trainer's module with seeded weights,
top-k inside the model, ``OUTPUT__0`` indexes, ``OUTPUT__1`` scores) and registered with its signature on a
(unique) registry topic is served by Recommend over gRPC: the answer is exactly the eager PyTorch module's
top-k for the entity's online history followed by the context items (right-aligned vocabulary indexes), item
ids from the vocabulary, exclusions dropped, the first k (default 10), with the scores within 1e-6; unknown
context items are listed; an entity without history (MISSING) or with an empty one gets the popular items
(ROUTE_FALLBACK, fallback, the shares as scores); a Prediction event with the items, context items, exclusions
and k reaches the predictions topic keyed by the entity. Statuses: k above max_k INVALID_ARGUMENT naming k and
the range, a model of another task and an empty vocabulary FAILED_PRECONDITION, an unknown model NOT_FOUND; a
version Triton does not serve answers the popular items (ROUTE_FALLBACK). It also measures Recommend latency
over 300 sequential calls. Then a traffic policy mirroring every request to version 3 (the same Triton model):
the answers stay version 1's, and a request's shadow Prediction (ROUTE_SHADOW, shadow true, version 3, the
same request id, its own event id, the same items) reaches the predictions topic. The Triton model is uniquely
named (loaded, then unloaded and removed).
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.inference.app import wire_inference
from aimesh.inference.settings import InferenceSettings
from aimesh.training.trainers.sequence_next_item import NextItemModel
from tests.integration import next_item_model
from tests.integration.test_inference_service import free_port, model_repo

pytestmark = [pytest.mark.integration]

SEQUENCE = "history:recent"
COUNT = "history:count"
VOCABULARY = [f"p-{i:03d}" for i in range(40)]
LENGTH = 6
MAX_K = 15
POPULAR = ["p-007", "p-003", "p-011", "p-020"]
SHARES = [0.2, 0.15, 0.1, 0.05]
HISTORIES: dict[str, tuple[str, ...] | None] = {
    "m-1": ("p-001", "p-002", "p-003", "p-004", "p-005", "p-006", "p-009"),
    "m-2": ("zz-unknown", "p-010"),
    "empty": (),
    "cold": None,
}
"""Online history per entity, oldest first; None is MISSING."""


class FakeFeatureService(feature_pb2_grpc.FeatureServiceServicer):
    """Answers the sequence feature from HISTORIES (a list value) and a count; records the requests."""

    def __init__(self) -> None:
        self.requests: list[feature_pb2.GetOnlineFeaturesRequest] = []

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        self.requests.append(request)
        row = request.entity_rows[0]
        entity = row.entity_ids.get("member", "")
        history = HISTORIES.get(entity)
        if history is None:
            values = [feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING) for _ in range(2)]
        else:
            listed = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT)
            listed.value.list_value.SetInParent()
            for element in history:
                listed.value.list_value.values.add(string_value=element)
            count = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT)
            count.value.double_value = float(len(history))
            values = [listed, count]
        return feature_pb2.GetOnlineFeaturesResponse(
            feature_names=[SEQUENCE, COUNT],
            rows=[feature_pb2.OnlineFeatureRow(entity_id=entity, values=values, row_index=0)],
        )


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


@pytest.fixture
async def exported(endpoints: Any) -> AsyncIterator[tuple[str, NextItemModel]]:
    name = f"next_item_it_{uuid.uuid4().hex[:8]}"
    module = next_item_model.export(
        model_repo(),
        name,
        vocabulary=len(VOCABULARY),
        length=LENGTH,
        k=MAX_K,
        extra_inputs=1,
        embedding_dim=16,
        hidden=32,
    )
    client = InferenceServerClient(url=endpoints.triton_grpc)
    try:
        await client.load_model(name, client_timeout=120.0)
        yield name, module
    finally:
        await client.unload_model(name, client_timeout=60.0)
        await client.close()
        shutil.rmtree(model_repo() / name, ignore_errors=True)


def next_item_signature(vocabulary: list[str] = VOCABULARY) -> signature_pb2.ModelSignature:
    return next_item_model.signature(
        SEQUENCE, vocabulary, length=LENGTH, k=MAX_K, numeric_inputs=[COUNT], popular=POPULAR, shares=SHARES
    )


def registered(
    model: str, version: int, triton_name: str, signature: signature_pb2.ModelSignature
) -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=version,
        triton_model_name=triton_name,
        triton_model_version=1,
        features=[i.name for i in signature.inputs],
        feature_service="next_v1",
        signature=signature,
    )


def champion(model: str, version: int) -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name=model,
        version=version,
        alias_change=training_pb2.AliasChange(model_name=model, alias="champion", new_version=version),
    )


def expected_items(
    module: NextItemModel, sequence: tuple[str, ...], *, exclude: set[str], k: int
) -> list[tuple[str, float]]:
    row = [*next_item_model.encode(sequence, VOCABULARY, LENGTH), float(len(sequence))]
    indexes, scores = next_item_model.expected(module, row)
    ranked = [(VOCABULARY[i - 1], s) for i, s in zip(indexes, scores, strict=True)]
    return [(item, s) for item, s in ranked if item not in exclude][:k]


async def test_recommend_end_to_end(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    exported: tuple[str, NextItemModel],
    feature_service: tuple[str, FakeFeatureService],
    record_property: Callable[[str, object], None],
    tmp_path: Path,
) -> None:
    triton_name, module = exported
    registry = await make_topic("registry", partitions=1)
    predictions = await make_topic("predictions")
    feature_address, fake = feature_service
    settings = InferenceSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-inference-next-{unique}",
        topics=[registry],
        predictions_topic=predictions,
        triton_url=endpoints.triton_grpc,
        feature_address=feature_address,
        shutdown_grace_seconds=2.0,
        readiness_interval_seconds=0.5,
        ship_logs=False,
        data_dir=tmp_path,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    await wire_inference(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    model, binary, empty = f"next_{unique}", f"binary_{unique}", f"empty_{unique}"
    other_task = next_item_signature()
    other_task.task = signature_pb2.TASK_BINARY_CLASSIFICATION
    events = [
        registered(model, 1, triton_name, next_item_signature()),
        champion(model, 1),
        registered(model, 2, f"not_loaded_{unique}", next_item_signature()),
        registered(binary, 1, triton_name, other_task),
        champion(binary, 1),
        registered(empty, 1, triton_name, next_item_signature(vocabulary=[])),
        champion(empty, 1),
    ]
    try:
        for event in events:
            await producer.publish(registry, event, key=event.model_name)

        context, exclude = ["p-012", "zz-new", "p-013"], {"p-004", "p-020"}
        request = inference_pb2.RecommendRequest(
            request_id=f"req-{unique}",
            model=model,
            entity_ids={"member": "m-1"},
            context_items=context,
            exclude_items=sorted(exclude),
            k=8,
        )
        response = await _when_routable(stub, request)
        history = HISTORIES["m-1"]
        assert history is not None
        want = expected_items(module, (*history, *context), exclude=exclude, k=8)
        assert [i.item_id for i in response.items] == [item for item, _ in want]
        assert [i.score for i in response.items] == pytest.approx([s for _, s in want], abs=1e-6)
        assert len(response.items) == 8 and not exclude & {i.item_id for i in response.items}
        assert (response.model_name, response.model_version, response.max_k) == (model, 1, MAX_K)
        assert response.route == inference_pb2.ROUTE_CHAMPION and not response.fallback
        assert list(response.unknown_items) == ["zz-new"]
        assert fake.requests[-1].feature_service == "next_v1"
        assert dict(fake.requests[-1].entity_rows[0].entity_ids) == {"member": "m-1"}

        prediction, key = await _find_prediction(endpoints.kafka_bootstrap, predictions, response.event_id)
        assert key == b"m-1"
        assert list(prediction.items) == [i.item_id for i in response.items]
        assert list(prediction.context_items) == context
        assert sorted(prediction.exclude_items) == sorted(exclude)
        assert (prediction.k, prediction.request_id, prediction.model_version) == (8, f"req-{unique}", 1)

        default_k = await stub.Recommend(
            inference_pb2.RecommendRequest(model=model, entity_ids={"member": "m-2"}), timeout=5
        )
        history_2 = HISTORIES["m-2"]
        assert history_2 is not None
        assert [i.item_id for i in default_k.items] == [
            item for item, _ in expected_items(module, history_2, exclude=set(), k=10)
        ], "k 0 means 10; an unknown history element is fed as 0 beside the known one"

        for entity in ("cold", "empty"):
            cold = await stub.Recommend(
                inference_pb2.RecommendRequest(
                    model=model, entity_ids={"member": entity}, context_items=["zz-x"], exclude_items=["p-003"], k=3
                ),
                timeout=5,
            )
            assert cold.fallback and cold.route == inference_pb2.ROUTE_FALLBACK, entity
            assert [(i.item_id, i.score) for i in cold.items] == [("p-007", 0.2), ("p-011", 0.1), ("p-020", 0.05)]
            assert list(cold.unknown_items) == ["zz-x"]
        warm_context = await stub.Recommend(
            inference_pb2.RecommendRequest(model=model, entity_ids={"member": "cold"}, context_items=["p-030"], k=3),
            timeout=5,
        )
        assert not warm_context.fallback, "a known context item is enough for the model"
        assert [i.item_id for i in warm_context.items] == [
            item for item, _ in expected_items(module, ("p-030",), exclude=set(), k=3)
        ]

        await _expect(
            stub,
            inference_pb2.RecommendRequest(model=model, entity_ids={"member": "m-1"}, k=MAX_K + 1),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"k is {MAX_K + 1}; model {model!r} v1 answers k in [1, {MAX_K}]",
        )
        await _expect(
            stub,
            inference_pb2.RecommendRequest(model=binary, entity_ids={"member": "m-1"}),
            grpc.StatusCode.FAILED_PRECONDITION,
            "TASK_BINARY_CLASSIFICATION model; Recommend serves TASK_NEXT_ITEM",
        )
        await _expect(
            stub,
            inference_pb2.RecommendRequest(model=empty, entity_ids={"member": "m-1"}),
            grpc.StatusCode.FAILED_PRECONDITION,
            "has an empty item vocabulary",
        )
        await _expect(
            stub, inference_pb2.RecommendRequest(model=f"nope_{unique}"), grpc.StatusCode.NOT_FOUND, "not registered"
        )
        unserved = await stub.Recommend(
            inference_pb2.RecommendRequest(model=model, version=2, entity_ids={"member": "m-1"}, k=3), timeout=5
        )
        assert (unserved.model_version, unserved.route, unserved.fallback) == (2, inference_pb2.ROUTE_FALLBACK, True)
        assert [i.item_id for i in unserved.items] == POPULAR[:3], "Triton cannot serve it: the popular items"
        await _expect(
            stub,
            inference_pb2.RecommendRequest(model=model, entity_ids={"other": "x"}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "entity_ids['member'] is missing",
        )

        latencies = []
        for i in range(300):
            started = time.perf_counter()
            await stub.Recommend(
                inference_pb2.RecommendRequest(model=model, entity_ids={"member": ("m-1", "m-2")[i % 2]}), timeout=5
            )
            latencies.append(time.perf_counter() - started)
        p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
        print(f"Recommend latency over 300 sequential calls: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        record_property("recommend_p50_ms", round(p50, 2))
        record_property("recommend_p99_ms", round(p99, 2))

        await producer.publish(registry, registered(model, 3, triton_name, next_item_signature()), key=model)
        await producer.publish(registry, shadow_policy(model, version=3), key=model)
        live, mirror = await _mirrored(stub, model, endpoints.kafka_bootstrap, predictions, unique)
        assert (live.route, live.model_version, live.shadow) == (inference_pb2.ROUTE_CHAMPION, 1, False)
        assert (mirror.route, mirror.model_version, mirror.shadow) == (inference_pb2.ROUTE_SHADOW, 3, True)
        assert mirror.request_id == live.request_id and mirror.event_id != live.event_id
        assert list(mirror.items) == list(live.items), "version 3 is the same Triton model"
    finally:
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)


async def _when_routable(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.RecommendRequest
) -> inference_pb2.RecommendResponse:
    deadline = time.monotonic() + 30
    while True:
        try:
            return await stub.Recommend(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            if (
                exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
                or time.monotonic() > deadline
            ):
                raise
            await asyncio.sleep(0.2)


async def _expect(
    stub: inference_pb2_grpc.InferenceServiceStub,
    request: inference_pb2.RecommendRequest,
    code: grpc.StatusCode,
    text: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Recommend(request, timeout=5)
    assert failure.value.code() == code, failure.value.details()
    assert text in (failure.value.details() or "")


def shadow_policy(model: str, *, version: int) -> events_pb2.ModelEvent:
    """The traffic policy mirroring every request of ``model`` to ``version``."""
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED,
        model_name=model,
        traffic_policy=training_pb2.TrafficPolicy(
            model_name=model, shadow_version=version, shadow_share=1.0, revision=1, actor="it", reason="shadow"
        ),
    )


async def _mirrored(
    stub: inference_pb2_grpc.InferenceServiceStub, model: str, bootstrap: str, topic: str, unique: str
) -> tuple[inference_events.Prediction, inference_events.Prediction]:
    """Recommend under fresh request ids until one of them has a shadow Prediction on ``topic`` (the policy
    applied), 60 s at most; that request's live and shadow Predictions."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: dict[tuple[str, bool], inference_events.Prediction] = {}
    try:
        deadline = time.monotonic() + 60
        n = 0
        while time.monotonic() < deadline:
            n += 1
            request_id = f"shadow-{unique}-{n}"
            answer = await stub.Recommend(
                inference_pb2.RecommendRequest(request_id=request_id, model=model, entity_ids={"member": "m-1"}),
                timeout=5,
            )
            assert answer.model_version == 1, "a shadow never answers"
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    prediction = inference_events.Prediction.FromString(record.value)
                    if prediction.request_id.startswith(f"shadow-{unique}-"):
                        seen[(prediction.request_id, prediction.shadow)] = prediction
            done = [rid for rid, shadow in seen if shadow and (rid, False) in seen]
            if done:
                return seen[(done[0], False)], seen[(done[0], True)]
        pytest.fail(f"no shadow Prediction of model {model!r} on {topic} within 60 s")
    finally:
        await consumer.stop()


async def _find_prediction(
    bootstrap: str, topic: str, event_id: str
) -> tuple[inference_events.Prediction, bytes | None]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if dict(record.headers).get("ce_id") == event_id.encode():
                        return inference_events.Prediction.FromString(record.value), record.key
        pytest.fail(f"no Prediction with event id {event_id} on {topic} within 20 s")
    finally:
        await consumer.stop()
