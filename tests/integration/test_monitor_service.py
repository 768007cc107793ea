"""Monitor against real Kafka and the real Elasticsearch.

What it proves: Prediction events (some published twice) and log records (shipped by ``LogShipper``,
plus raw duplicates) on unique topics end up in Elasticsearch exactly once each, findable by
request_id; with a reference profile from a ModelEvent, GetDriftReport returns the PSI computed by
hand from the same scores; the drift window of those predictions (duplicates counted once) is judged,
its score report indexed into ``<prefix>-drift``, a DRIFT alert reaches the alerts topic and ListAlerts
returns it. Measures the end-to-end indexing rate and the raw bulk rate.
Every index and template is named by a unique prefix and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from elasticsearch import AsyncElasticsearch

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.distribution import bin_counts, compare, score_profile
from aimesh.core.logship import LogShipper
from aimesh.core.runner import ServiceRuntime
from aimesh.monitor.app import wire_monitor
from aimesh.monitor.bulk import IndexRequest
from aimesh.monitor.documents import index_names
from aimesh.monitor.elastic import ElasticStore
from aimesh.monitor.settings import MonitorSettings
from tests.integration.elastic_indices import drop_monitor_indices

pytestmark = [pytest.mark.integration]

N_PREDICTIONS = 2000
N_DUPLICATES = 300
N_LOGS = 60
EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)
REFERENCE = (0.25, 0.25, 0.25, 0.25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def es(endpoints: Any, unique: str) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(endpoints.elasticsearch_url, request_timeout=30)
    try:
        yield client
    finally:
        await drop_monitor_indices(client, f"it-{unique}")
        await client.close()


def prediction(i: int, model: str, score: float) -> inference_events.Prediction:
    p = inference_events.Prediction(
        request_id=f"req-{i}",
        event_id=f"evt-{i}",
        model_name=model,
        model_version=1,
        score=score,
        features={"card_stats:f1": float(i)},
        entity_ids={"card": f"c-{i % 50}"},
    )
    p.time.FromDatetime(datetime.now(UTC))
    p.latency.FromMilliseconds(3)
    return p


async def test_index_dedupe_and_drift(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    es: AsyncElasticsearch,
    record_property: Callable[[str, object], None],
) -> None:
    predictions_topic = await make_topic("predictions")
    logs_topic = await make_topic("logs")
    registry = await make_topic("registry", partitions=1)
    alerts_topic = await make_topic("alerts", partitions=1)
    prefix = f"it-{unique}"
    settings = MonitorSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        elasticsearch_url=endpoints.elasticsearch_url,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-monitor-{unique}",
        topics=[predictions_topic, logs_topic],
        registry_topic=registry,
        alerts_topic=alerts_topic,
        index_prefix=prefix,
        drift_interval_seconds=1.0,
        drift_window_count=N_PREDICTIONS,
        drift_min_samples=N_PREDICTIONS,
        shutdown_grace_seconds=2.0,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    await wire_monitor(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = monitor_pb2_grpc.MonitorServiceStub(channel)
    model = f"fraud_{unique}"
    indices = index_names(prefix)
    try:
        registered = events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
            model_name=model,
            version=1,
            triton_model_name=model,
            reference_profile=training_pb2.ScoreProfile(bin_edges=EDGES, fractions=REFERENCE, count=1000),
        )
        champion = events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
            model_name=model,
            version=1,
            alias_change=training_pb2.AliasChange(alias="champion", new_version=1),
        )
        for event in (registered, champion):
            await producer.publish(registry, event, key=model)

        rng = np.random.default_rng(3)
        scores = np.clip(rng.beta(2.0, 6.0, size=N_PREDICTIONS), 0.0, 1.0).tolist()
        started = time.perf_counter()
        acks = []
        for i, score in enumerate(scores):
            p = prediction(i, model, score)
            acks.append(await producer.send_event(predictions_topic, p, key=f"c-{i % 50}", event_id=p.event_id))
        for i in range(N_DUPLICATES):
            p = prediction(i, model, scores[i])
            acks.append(await producer.send_event(predictions_topic, p, key=f"c-{i % 50}", event_id=p.event_id))
        shipper = LogShipper("it-service", topic=logs_topic)
        logger = logging.getLogger(f"it.monitor.{unique}")
        logger.addHandler(shipper)
        logger.propagate = False
        for i in range(N_LOGS):
            logger.warning("shipped log %d", i, extra={"request.id": f"req-{i}"})
        assert await shipper.ship_pending(producer) == N_LOGS
        duplicate = monitor_events.LogRecord(service="it-service", message="dup", level=monitor_events.LOG_LEVEL_ERROR)
        duplicate.timestamp.FromDatetime(datetime.now(UTC))
        for _ in range(3):
            acks.append(
                await producer.send_event(logs_topic, duplicate, key="it-service", event_id=f"log-dup-{unique}")
            )
        await asyncio.gather(*acks)

        expected_predictions, expected_logs = N_PREDICTIONS, N_LOGS + 1
        await _wait_for_count(es, indices["predictions"], expected_predictions)
        await _wait_for_count(es, indices["logs"], expected_logs)
        elapsed = time.perf_counter() - started
        rate = (expected_predictions + N_DUPLICATES + N_LOGS + 3) / elapsed
        print(f"end-to-end (publish -> Kafka -> monitor -> ES searchable): {rate:.0f} events/s over {elapsed:.1f}s")
        record_property("monitor_end_to_end_events_per_s", round(rate))

        terms = await es.search(
            index=indices["predictions"], size=0, aggs={"ids": {"terms": {"field": "request_id", "size": 5000}}}
        )
        buckets = terms["aggregations"]["ids"]["buckets"]
        assert len(buckets) == N_PREDICTIONS
        assert {b["doc_count"] for b in buckets} == {1}
        for i in (0, 7, N_DUPLICATES - 1, N_PREDICTIONS - 1):
            hit = await es.search(index=indices["predictions"], query={"term": {"request_id": f"req-{i}"}})
            assert hit["hits"]["total"]["value"] == 1
            assert hit["hits"]["hits"][0]["_source"]["score"] == pytest.approx(scores[i])
        logs = await es.search(index=indices["logs"], query={"term": {"labels.request_id": "req-5"}})
        assert logs["hits"]["total"]["value"] == 1
        assert logs["hits"]["hits"][0]["_source"]["log"]["level"] == "warning"

        reference = score_profile(training_pb2.ScoreProfile(bin_edges=EDGES, fractions=REFERENCE, count=1000))
        expected = compare(reference, bin_counts(reference, np.asarray(scores)), epsilon=settings.psi_epsilon)
        reply = await _drift_when_known(stub, model)
        assert reply.report.sample_count == N_PREDICTIONS
        assert reply.report.psi == pytest.approx(expected.psi, rel=1e-9)
        assert reply.report.psi > settings.psi_threshold
        assert [b.current_fraction for b in reply.report.bins] == pytest.approx(list(expected.current_fractions))

        await _wait_for_count(es, indices["drift"], 1)  # the one window that closed: the score's report
        drift_docs = await es.search(index=indices["drift"], query={"term": {"model.name": model}})
        assert drift_docs["hits"]["hits"][0]["_source"]["psi"] == pytest.approx(expected.psi, rel=1e-6)

        alert = await _first_alert(endpoints.kafka_bootstrap, alerts_topic)
        assert alert.kind == monitor_events.ALERT_KIND_DRIFT
        assert alert.model_name == model and alert.value > settings.psi_threshold
        await es.indices.refresh(index=indices["alerts"])
        listed = await stub.ListAlerts(monitor_pb2.ListAlertsRequest(model_name=model), timeout=5)
        assert [a.alert_id for a in listed.alerts] == [alert.alert_id]

        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.GetDriftReport(monitor_pb2.GetDriftReportRequest(model_name="nope"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        bad_since = monitor_pb2.ListAlertsRequest(model_name=model)
        bad_since.since.nanos = -1
        for bad, field in (  # what the fault suite's fuzz found: INTERNAL and UNAVAILABLE (Elasticsearch refused)
            (bad_since, "since"),
            (monitor_pb2.ListAlertsRequest(model_name="m" * (1 << 20)), "model_name"),
            (monitor_pb2.ListAlertsRequest(kind=-1), "kind"),  # type: ignore[arg-type]
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListAlerts(bad, timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
            assert (refused.value.details() or "").startswith(f"{field} is "), refused.value.details()

        bulk_rate = await _bulk_rate(settings, prefix)
        print(f"ElasticStore.bulk_index: {bulk_rate:.0f} docs/s (5 x 1000 prediction documents)")
        record_property("es_bulk_docs_per_s", round(bulk_rate))
    finally:
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)


async def _wait_for_count(es: AsyncElasticsearch, index: str, expected: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    count = 0
    while time.monotonic() < deadline:
        if await es.indices.exists(index=index):
            await es.indices.refresh(index=index)
            count = (await es.count(index=index))["count"]
            if count >= expected:
                break
        await asyncio.sleep(0.3)
    assert count == expected, f"{index} holds {count} documents, expected {expected}"


async def _drift_when_known(
    stub: monitor_pb2_grpc.MonitorServiceStub, model: str
) -> monitor_pb2.GetDriftReportResponse:
    deadline = time.monotonic() + 20
    while True:
        try:
            return await stub.GetDriftReport(monitor_pb2.GetDriftReportRequest(model_name=model), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _first_alert(bootstrap: str, topic: str) -> monitor_events.Alert:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    return monitor_events.Alert.FromString(record.value)
        pytest.fail(f"no alert on {topic} within 20 s")
    finally:
        await consumer.stop()


async def _bulk_rate(settings: MonitorSettings, prefix: str) -> float:
    store = ElasticStore(settings.elasticsearch_url, prefix)
    try:
        index = f"{prefix}-predictions-bulk"
        total, elapsed = 0, 0.0
        for round_ in range(5):
            requests = [
                IndexRequest(
                    index,
                    f"b-{round_}-{i}",
                    {
                        "@timestamp": datetime.now(UTC).isoformat(),
                        "request_id": f"b{i}",
                        "score": 0.5,
                        "model": {"name": "m", "version": 1},
                    },
                )
                for i in range(1000)
            ]
            started = time.perf_counter()
            assert await store.bulk_index(requests) == []
            elapsed += time.perf_counter() - started
            total += len(requests)
        return total / elapsed
    finally:
        await store.close()
