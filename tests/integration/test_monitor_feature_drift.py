"""Per-input drift on the real stack (Kafka + Elasticsearch): a shifted input in live traffic raises a
drift alert naming that input and no other.

A version registered on a unique registry topic carries the reference profiles of three numeric inputs
and one categorical input (and a score profile); monitor indexes predictions from a unique topic and
counts them into windows of ``WINDOW`` predictions. In the first window one numeric input is shifted
by one and a half of its standard deviations: exactly one alert fires, naming it; GetDrift lists it
alone as drifted; the window's five reports (four inputs and the score) are in ``<prefix>-drift``;
an input fed its fill (listed in ``missing_features``) counts as missing; GetDriftReport, aggregating
the indexed predictions on demand, agrees with the window's reports. A second, unshifted window
resolves the alert. Every index and template is named by a unique prefix
and deleted afterwards.
"""

from __future__ import annotations

import asyncio
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

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.distribution import categorical_profile, numeric_profile
from aimesh.core.runner import ServiceRuntime
from aimesh.monitor.app import wire_monitor
from aimesh.monitor.documents import index_names
from aimesh.monitor.settings import MonitorSettings
from tests.integration.elastic_indices import drop_monitor_indices

pytestmark = [pytest.mark.integration]

WINDOW = 3000
NUMERIC = ("txn:amount", "txn:count_1h", "txn:age_days")
STDDEVS = (1.0, 3.0, 40.0)
CATEGORICAL = "txn:channel"
VOCABULARY = ("web", "app", "branch")
SHARES = (0.5, 0.4, 0.1)
SHIFTED = "txn:count_1h"


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


def registered(model: str) -> events_pb2.ModelEvent:
    rng = np.random.default_rng(1)
    profiles = [numeric_profile(name, rng.normal(0.0, sd, 20_000)) for name, sd in zip(NUMERIC, STDDEVS, strict=True)]
    profiles.append(categorical_profile(CATEGORICAL, rng.choice(VOCABULARY, size=20_000, p=SHARES).tolist()))
    inputs = [signature_pb2.SignatureInput(name=name, kind=signature_pb2.INPUT_KIND_NUMERIC) for name in NUMERIC]
    inputs.append(
        signature_pb2.SignatureInput(name=CATEGORICAL, kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=VOCABULARY)
    )
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=model,
        version=1,
        triton_model_name=model,
        features=[*NUMERIC, CATEGORICAL],
        reference_profile=training_pb2.ScoreProfile(bin_edges=[0.0, 0.25, 0.5, 0.75, 1.0], fractions=[0.25] * 4),
        signature=signature_pb2.ModelSignature(inputs=inputs),
        input_profiles=profiles,
    )


def predictions(model: str, window: int, *, shift: bool) -> list[inference_events.Prediction]:
    """One window of predictions encoded as inference sends them; ``shift`` moves ``SHIFTED`` by 1.5 sd."""
    rng = np.random.default_rng(10 + window)
    out = []
    for i in range(WINDOW):
        features = {name: float(rng.normal(0.0, sd)) for name, sd in zip(NUMERIC, STDDEVS, strict=True)}
        if shift:
            features[SHIFTED] += 1.5 * STDDEVS[NUMERIC.index(SHIFTED)]
        features[CATEGORICAL] = float(rng.choice(len(VOCABULARY), p=SHARES) + 1)
        missing = [NUMERIC[0]] if i % 20 == 0 else []  # fed its fill: counted as missing, in no bin
        if missing:
            features[NUMERIC[0]] = 0.0
        p = inference_events.Prediction(
            request_id=f"req-{window}-{i}",
            event_id=f"evt-{window}-{i}",
            model_name=model,
            model_version=1,
            score=float(rng.uniform()),
            features=features,
            missing_features=missing,
            entity_ids={"account": f"a-{i % 50}"},
        )
        p.time.FromDatetime(datetime.now(UTC))
        out.append(p)
    return out


async def test_a_shifted_input_raises_a_drift_alert_naming_it_and_no_other(
    endpoints: Any, make_topic: Callable[..., Any], unique: str, es: AsyncElasticsearch
) -> None:
    predictions_topic = await make_topic("predictions")
    registry = await make_topic("registry", partitions=1)
    alerts_topic = await make_topic("alerts", partitions=1)
    prefix = f"it-{unique}"
    settings = MonitorSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        elasticsearch_url=endpoints.elasticsearch_url,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-monitor-{unique}",
        topics=[predictions_topic],
        dlq_topics=[],
        registry_topic=registry,
        alerts_topic=alerts_topic,
        index_prefix=prefix,
        drift_interval_seconds=1.0,
        drift_window_count=WINDOW,
        shutdown_grace_seconds=2.0,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    drift = await wire_monitor(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = monitor_pb2_grpc.MonitorServiceStub(channel)
    model = f"drift_{unique}"
    try:
        await producer.publish(registry, registered(model), key=model)
        await _until(lambda: _known(drift, model), "the version is known")
        started = time.perf_counter()
        await _publish(producer, predictions_topic, predictions(model, 1, shift=True))
        reply = await _drift_when_judged(stub, model)
        print(f"publish -> Kafka -> monitor -> window judged: {time.perf_counter() - started:.1f}s for {WINDOW}")

        assert list(reply.drifted_features) == [SHIFTED]
        assert [r.feature for r in reply.reports] == [*NUMERIC, CATEGORICAL, ""]
        by_feature = {r.feature: r for r in reply.reports}
        assert by_feature[SHIFTED].psi >= settings.psi_threshold and by_feature[SHIFTED].sample_count == WINDOW
        assert all(not r.drifted for name, r in by_feature.items() if name != SHIFTED)
        first = by_feature[NUMERIC[0]]
        assert (first.missing_count, first.sample_count) == (WINDOW // 20, WINDOW - WINDOW // 20)
        assert by_feature[CATEGORICAL].kind == signature_pb2.INPUT_KIND_CATEGORICAL

        fired = await _alerts(endpoints.kafka_bootstrap, alerts_topic, count=1)
        assert [(a.feature, a.state) for a in fired] == [(SHIFTED, monitor_events.ALERT_STATE_FIRING)]
        (alert,) = fired
        assert alert.kind == monitor_events.ALERT_KIND_DRIFT and alert.model_name == model and SHIFTED in alert.message
        assert not any(name in alert.message for name in (*NUMERIC, CATEGORICAL) if name != SHIFTED)

        indices = index_names(prefix)
        await es.indices.refresh(index=indices["drift"])
        docs = await es.search(index=indices["drift"], query={"term": {"model.name": model}}, size=20)
        sources = [hit["_source"] for hit in docs["hits"]["hits"]]
        assert sorted(s["feature"] for s in sources) == sorted([*NUMERIC, CATEGORICAL, ""])
        assert [s["feature"] for s in sources if s["drifted"]] == [SHIFTED]

        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.GetDrift(monitor_pb2.GetDriftRequest(model_name=model, model_version=5), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        for name in (SHIFTED, CATEGORICAL, NUMERIC[0]):  # on demand, aggregated from the indexed predictions
            asked = monitor_pb2.GetDriftReportRequest(model_name=model, model_version=1, feature=name)
            on_demand = (await stub.GetDriftReport(asked, timeout=10)).report
            window_report = by_feature[name]
            assert (on_demand.drifted, on_demand.sample_count) == (name == SHIFTED, window_report.sample_count)
            assert on_demand.psi == pytest.approx(window_report.psi, rel=1e-9), name
            assert on_demand.missing_count == window_report.missing_count, name

        await _publish(producer, predictions_topic, predictions(model, 2, shift=False))
        changes = await _alerts(endpoints.kafka_bootstrap, alerts_topic, count=2)
        assert [(a.alert_id, a.state) for a in changes] == [
            (alert.alert_id, monitor_events.ALERT_STATE_FIRING),
            (alert.alert_id, monitor_events.ALERT_STATE_RESOLVED),
        ]
        latest = await stub.GetDrift(monitor_pb2.GetDriftRequest(model_name=model, model_version=1), timeout=10)
        assert list(latest.drifted_features) == []
    finally:
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)


def _known(drift: Any, model: str) -> bool:
    try:
        drift.target(model, 1)
    except Exception:
        return False
    return True


async def _until(condition: Callable[[], bool], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within}s: {what}")
        await asyncio.sleep(0.2)


async def _publish(producer: Any, topic: str, batch: list[inference_events.Prediction]) -> None:
    acks = [await producer.send_event(topic, p, key=p.entity_ids["account"], event_id=p.event_id) for p in batch]
    await asyncio.gather(*acks)


async def _drift_when_judged(stub: monitor_pb2_grpc.MonitorServiceStub, model: str) -> monitor_pb2.GetDriftResponse:
    deadline = time.monotonic() + 60
    while True:
        try:
            return await stub.GetDrift(monitor_pb2.GetDriftRequest(model_name=model, model_version=1), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def _alerts(bootstrap: str, topic: str, *, count: int, settle: float = 3.0) -> list[monitor_events.Alert]:
    """Every alert on ``topic`` once at least ``count`` are there and ``settle`` seconds brought no other."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        found: list[monitor_events.Alert] = []
        deadline, quiet_since = time.monotonic() + 60, time.monotonic()
        while time.monotonic() < deadline:
            batch = [r for records in (await consumer.getmany(timeout_ms=300)).values() for r in records]
            found += [monitor_events.Alert.FromString(r.value) for r in batch]
            if batch:
                quiet_since = time.monotonic()
            if len(found) >= count and time.monotonic() - quiet_since >= settle:
                return found
        pytest.fail(f"{len(found)} alerts on {topic} within 60 s, expected {count}")
    finally:
        await consumer.stop()
