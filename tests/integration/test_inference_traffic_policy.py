"""Traffic policies on the real stack: real Kafka, the real Triton, real Elasticsearch (monitor in-process), an
in-process fake FeatureService.

What it proves: with two registered versions (two Triton models with different weights), champion -> 1 and a
TRAFFIC_POLICY_CHANGED event (canary version 2 at 10 %, shadow version 2 at 100 %) on the registry topic,
Score of 5,000 distinct key entities sends 10 % +- 2 % of them to version 2 (ROUTE_CANARY), each answer equal
to its version's model maths (numpy, 1e-5); a second request of a sample of entities, under another request
id, gets the same version; ScoreBatch of the same 5,000 entities (batches of 50) routes each row to the
version Score gave its entity, with its version's maths; every request and every batch row answered by the
champion is mirrored to version 2 once: its shadow Prediction (ROUTE_SHADOW, shadow true, the same request id,
its own event id, version 2's maths) is on the predictions topic, none for the canaried ones (the shadow is
the version that answered them), nothing failed or skipped; the monitor, which replays the same registry topic
(so it takes the policy event too), indexes the shadow predictions in Elasticsearch with route ROUTE_SHADOW
and shadow true, and the canaried ones with ROUTE_CANARY. The throughput of the 5,000 calls is printed. Unique
topics, groups, Triton models and index prefix, all removed afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from elasticsearch import AsyncElasticsearch
from prometheus_client import REGISTRY
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.feature.v1 import feature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.inference.app import wire_inference
from aimesh.inference.routing import bucket
from aimesh.inference.settings import InferenceSettings
from aimesh.monitor.app import wire_monitor
from aimesh.monitor.documents import index_names
from aimesh.monitor.settings import MonitorSettings
from tests.integration.elastic_indices import drop_monitor_indices
from tests.integration.test_inference_service import (
    FEATURES,
    SEGMENTS,
    FakeFeatureService,
    Model,
    champion,
    export_model,
    free_port,
    model_repo,
    model_signature,
    registered,
    score_request,
    start_feature_service,
)

pytestmark = [pytest.mark.integration]

ENTITIES = 5_000
CONCURRENCY = 16
CANARY_WEIGHT = 0.1
STICKY_SAMPLE = 300
BATCH_ROWS = 50


def online_values(account: str) -> tuple[float, str, float, float]:
    """The fake feature service's values of ``a-<n>``: all present, varying with n."""
    n = int(account.removeprefix("a-"))
    return (n % 100) / 10.0, SEGMENTS[n % 2], float(n % 7) - 3.0, 1.0


def encoded(account: str) -> tuple[float, ...]:
    f1, segment, f3, f4 = online_values(account)
    return (f1, float(SEGMENTS.index(segment) + 1), f3, f4)


class AnyAccountFeatures(FakeFeatureService):
    """Answers every ``a-<n>`` account with ``online_values`` (event time 60 s before the as-of time)."""

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        rows = []
        for index, row in enumerate(request.entity_rows):
            account = row.entity_ids["account"]
            values = []
            for v in online_values(account):
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


@pytest.fixture
async def two_models(endpoints: Any) -> AsyncIterator[tuple[Model, Model]]:
    """Two Triton models with different random weights, loaded; unloaded and removed afterwards."""
    names = [f"policy_it_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    models = (export_model(model_repo(), names[0]), export_model(model_repo(), names[1]))
    client = InferenceServerClient(url=endpoints.triton_grpc)
    try:
        await asyncio.gather(*(client.load_model(name, client_timeout=120.0) for name in names))
        yield models
    finally:
        for name in names:
            await client.unload_model(name, client_timeout=60.0)
            shutil.rmtree(model_repo() / name, ignore_errors=True)
        await client.close()


@pytest.fixture
async def es(endpoints: Any, unique: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(endpoints.elasticsearch_url, request_timeout=30)
    try:
        yield client
    finally:
        await drop_monitor_indices(client, f"it-policy-{unique}")
        await client.close()


def policy_event(model: str) -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED,
        model_name=model,
        traffic_policy=training_pb2.TrafficPolicy(
            model_name=model,
            canary_version=2,
            canary_weight=CANARY_WEIGHT,
            shadow_version=2,
            shadow_share=1.0,
            actor="it",
            reason="canary and shadow test",
            revision=1,
        ),
    )


def shadow_total(model: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("aimesh_inference_shadow_total", {"model": model, "outcome": outcome}) or 0.0


async def test_sticky_canary_and_async_shadow(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    two_models: tuple[Model, Model],
    es: AsyncElasticsearch,
    record_property: Callable[[str, object], None],
) -> None:
    registry = await make_topic("registry", partitions=1)
    predictions = await make_topic("predictions")
    feature_server = await start_feature_service(AnyAccountFeatures(), 0)
    settings = InferenceSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-policy-{unique}",
        topics=[registry],
        predictions_topic=predictions,
        triton_url=endpoints.triton_grpc,
        feature_address=f"127.0.0.1:{feature_server.port}",
        max_shadow_in_flight=ENTITIES,
        shadow_timeout_seconds=30.0,
        shutdown_grace_seconds=5.0,
        readiness_interval_seconds=0.5,
        ship_logs=False,
    )
    prefix = f"it-policy-{unique}"
    monitor_settings = MonitorSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        elasticsearch_url=endpoints.elasticsearch_url,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-policy-monitor-{unique}",
        topics=[predictions],
        registry_topic=registry,
        alerts_topic=await make_topic("alerts", partitions=1),
        dlq_topics=[],
        index_prefix=prefix,
        shutdown_grace_seconds=2.0,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    monitor = ServiceRuntime(monitor_settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    monitor_producer = await connect_producer(monitor_settings)
    monitor.add_cleanup(monitor_producer.stop)
    await wire_inference(settings, runtime, producer)
    await wire_monitor(monitor_settings, monitor, monitor_producer)
    services = [asyncio.create_task(runtime.run()), asyncio.create_task(monitor.run())]
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    model = f"risk_{unique}"
    champion_model, canary_model = two_models
    try:
        for event in (
            registered(model, 1, champion_model.name, model_signature()),
            registered(model, 2, canary_model.name, model_signature()),
            champion(model, 1),
            policy_event(model),
        ):
            await producer.publish(registry, event, key=model)
        canaried = next(n for n in range(ENTITIES, 2 * ENTITIES) if bucket(model, f"a-{n}") < CANARY_WEIGHT)
        await _until_routed(stub, score_request(f"a-{canaried}", model=model), inference_pb2.ROUTE_CANARY)
        scored_before = shadow_total(model, "scored")

        slots = asyncio.Semaphore(CONCURRENCY)

        async def score(n: int, request_id: str) -> inference_pb2.ScoreResponse:
            async with slots:
                answer: inference_pb2.ScoreResponse = await stub.Score(
                    score_request(f"a-{n}", model=model, request_id=request_id), timeout=10
                )
                return answer

        started = time.perf_counter()
        answers = await asyncio.gather(*(score(n, f"{unique}-{n}") for n in range(ENTITIES)))
        elapsed = time.perf_counter() - started
        print(f"Score with a canary and a 100 % shadow: {ENTITIES / elapsed:.0f} calls/s over {elapsed:.1f} s")
        record_property("policy_score_calls_per_s", round(ENTITIES / elapsed))

        versions = {n: a.model_version for n, a in enumerate(answers)}
        share = sum(v == 2 for v in versions.values()) / ENTITIES
        print(f"canary share: {share:.4f} of {ENTITIES} entities")
        assert CANARY_WEIGHT - 0.02 <= share <= CANARY_WEIGHT + 0.02
        for n, answer in enumerate(answers):
            served = champion_model if answer.model_version == 1 else canary_model
            route = inference_pb2.ROUTE_CHAMPION if answer.model_version == 1 else inference_pb2.ROUTE_CANARY
            assert (answer.model_name, answer.route, answer.request_id) == (model, route, f"{unique}-{n}")
            assert answer.score == pytest.approx(served.expected(encoded(f"a-{n}")), abs=1e-5)
        sample = range(0, ENTITIES, ENTITIES // STICKY_SAMPLE)
        again = await asyncio.gather(*(score(n, f"{unique}-again-{n}") for n in sample))
        assert [a.model_version for a in again] == [versions[n] for n in sample], "each entity keeps its version"

        async def score_batch(numbers: range) -> inference_pb2.ScoreBatchResponse:
            rows = []
            for n in numbers:
                single = score_request(f"a-{n}", model=model, request_id=f"{unique}-batch-{n}")
                rows.append(
                    inference_pb2.ScoreBatchRow(
                        request_id=single.request_id, entity_ids=single.entity_ids, context=single.context
                    )
                )
            async with slots:
                answer: inference_pb2.ScoreBatchResponse = await stub.ScoreBatch(
                    inference_pb2.ScoreBatchRequest(model=model, rows=rows), timeout=30
                )
                return answer

        batches = await asyncio.gather(
            *(score_batch(range(at, min(at + BATCH_ROWS, ENTITIES))) for at in range(0, ENTITIES, BATCH_ROWS))
        )
        batched = [result.response for batch in batches for result in batch.results]
        assert [a.model_version for a in batched] == [versions[n] for n in range(ENTITIES)], "sticky across RPCs"
        for n, answer in enumerate(batched):
            served = champion_model if answer.model_version == 1 else canary_model
            route = inference_pb2.ROUTE_CHAMPION if answer.model_version == 1 else inference_pb2.ROUTE_CANARY
            assert (answer.route, answer.request_id) == (route, f"{unique}-batch-{n}")
            assert answer.score == pytest.approx(served.expected(encoded(f"a-{n}")), abs=1e-5)
        assert {(b.model_version, b.route) for b in batches} == {(1, inference_pb2.ROUTE_CHAMPION)}

        mirrored = {f"{unique}-{n}" for n, v in versions.items() if v == 1}
        mirrored |= {f"{unique}-again-{n}" for n in sample if versions[n] == 1}
        mirrored |= {f"{unique}-batch-{n}" for n, v in versions.items() if v == 1}
        shadows, canary_live = await _shadow_predictions(endpoints.kafka_bootstrap, predictions, unique, mirrored)
        assert set(shadows) == mirrored, "every champion-answered request is mirrored once, no canaried one"
        live_ids = {a.event_id for a in (*answers, *again, *batched)}
        for request_id, prediction in shadows.items():
            n = int(request_id.rpartition("-")[2])
            assert (prediction.model_name, prediction.model_version) == (model, 2)
            assert (prediction.route, prediction.shadow) == (inference_pb2.ROUTE_SHADOW, True)
            assert prediction.event_id not in live_ids
            assert prediction.score == pytest.approx(canary_model.expected(encoded(f"a-{n}")), abs=1e-5)
        assert canary_live == {
            *(f"{unique}-{n}" for n, v in versions.items() if v == 2),
            *(f"{unique}-again-{n}" for n in sample if versions[n] == 2),
            *(f"{unique}-batch-{n}" for n, v in versions.items() if v == 2),
        }
        assert shadow_total(model, "scored") - scored_before == len(mirrored)
        assert shadow_total(model, "failed") == shadow_total(model, "skipped") == 0

        index = index_names(prefix)["predictions"]
        shadow_query = {
            "bool": {
                "filter": [
                    {"term": {"model.name": model}},
                    {"term": {"route": "ROUTE_SHADOW"}},
                    {"term": {"shadow": True}},
                ]
            }
        }
        canary_query = {"bool": {"filter": [{"term": {"model.name": model}}, {"term": {"route": "ROUTE_CANARY"}}]}}
        await _wait_for_count(es, index, shadow_query, len(mirrored))
        await _wait_for_count(es, index, canary_query, len(canary_live) + 1)
        hit = await es.search(index=index, query=shadow_query, size=1)
        assert hit["hits"]["hits"][0]["_source"]["model"] == {"name": model, "version": 2}
    finally:
        await channel.close()
        runtime.request_stop()
        monitor.request_stop()
        await asyncio.wait_for(asyncio.gather(*services), 60)
        await feature_server.stop(0)


async def _until_routed(
    stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ScoreRequest, route: int
) -> None:
    """Score ``request`` until it is answered by ``route`` (the registry events are applied), 60 s at most."""
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        try:
            answer = await stub.Score(request, timeout=5)
            if answer.route == route:
                return
            last = inference_pb2.Route.Name(answer.route)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                raise
            last = f"{exc.code().name}: {exc.details()}"
        await asyncio.sleep(0.2)
    pytest.fail(f"not routed by {inference_pb2.Route.Name(route)} within 60 s; last answer {last}")


async def _shadow_predictions(
    bootstrap: str, topic: str, unique: str, expected: set[str]
) -> tuple[dict[str, inference_events.Prediction], set[str]]:
    """The shadow Predictions of this test's requests by request id (failing on a second one for a request),
    read until every ``expected`` one is there (60 s at most) and 2 s more, and the request ids of its
    canary Predictions."""
    shadows: dict[str, inference_events.Prediction] = {}
    canary: set[str] = set()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        settle: float | None = None
        while time.monotonic() < (settle or deadline):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    prediction = inference_events.Prediction.FromString(record.value)
                    if not prediction.request_id.startswith(f"{unique}-"):
                        continue
                    if prediction.route == inference_pb2.ROUTE_SHADOW:
                        assert prediction.request_id not in shadows, f"two shadows of {prediction.request_id}"
                        shadows[prediction.request_id] = prediction
                    elif prediction.route == inference_pb2.ROUTE_CANARY:
                        canary.add(prediction.request_id)
            if settle is None and expected <= set(shadows):
                settle = time.monotonic() + 2.0
        return shadows, canary
    finally:
        await consumer.stop()


async def _wait_for_count(
    es: AsyncElasticsearch, index: str, query: dict[str, Any], expected: int, within: float = 90.0
) -> None:
    deadline = time.monotonic() + within
    count = 0
    while time.monotonic() < deadline:
        if await es.indices.exists(index=index):
            await es.indices.refresh(index=index)
            count = (await es.count(index=index, query=query))["count"]
            if count >= expected:
                break
        await asyncio.sleep(0.5)
    assert count == expected, f"{index} holds {count} documents matching {query}, expected {expected}"
