"""Service levels and SLO alerts of the monitor against real Kafka and the real Elasticsearch.

What it proves: slow predictions published to the predictions topic (each with its own W3C trace id)
raise one ``latency_p99`` alert on the alerts topic carrying the trace id of one of the slow ones;
``GetServiceLevels`` reports the slow p99; ``ListAlerts`` finds the alert by state FIRING (and not by
RESOLVED or another feature); ``AcknowledgeAlert`` acknowledges it (listed as ACKNOWLEDGED); once
fast predictions replace the slow ones in the window the alert resolves (RESOLVED on the topic and in
the index), under the same alert id throughout. Measures the time from the last slow prediction
published to the alert on the topic.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from elasticsearch import AsyncElasticsearch

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.core.app import connect_producer
from aimesh.core.bus import EventProducer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.monitor.app import wire_monitor
from aimesh.monitor.documents import index_names, index_templates
from aimesh.monitor.settings import MonitorSettings

pytestmark = [pytest.mark.integration]

WINDOW_S = 4.0
THRESHOLD_MS = 200.0


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
        prefix = f"it-{unique}"
        await client.indices.delete(index=list(index_names(prefix).values()), ignore_unavailable=True)
        for name in index_templates(prefix):
            await client.options(ignore_status=404).indices.delete_index_template(name=name)
        await client.close()


async def publish(producer: EventProducer, topic: str, model: str, n: int, latency_ms: float) -> list[str]:
    """``n`` answered predictions of ``model`` now, each with a fresh trace id; returns the trace ids."""
    traces, acks = [], []
    for _ in range(n):
        trace = uuid.uuid4().hex
        p = inference_events.Prediction(
            request_id=uuid.uuid4().hex,
            event_id=uuid.uuid4().hex,
            model_name=model,
            model_version=1,
            score=0.5,
            route=inference_pb2.ROUTE_CHAMPION,
        )
        p.time.FromDatetime(datetime.now(UTC))
        p.latency.FromNanoseconds(int(latency_ms * 1e6))
        header = ("traceparent", f"00-{trace}-{uuid.uuid4().hex[:16]}-01".encode())
        acks.append(await producer.send_event(topic, p, key=model, event_id=p.event_id, extra_headers=[header]))
        traces.append(trace)
    await asyncio.gather(*acks)
    return traces


async def next_alert(consumer: AIOKafkaConsumer, state: int, within: float = 30.0) -> monitor_events.Alert:
    async with asyncio.timeout(within):
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    alert = monitor_events.Alert.FromString(r.value)
                    if alert.state == state:
                        return alert


async def listed(stub: monitor_pb2_grpc.MonitorServiceStub, **filters: Any) -> list[str]:
    reply = await stub.ListAlerts(monitor_pb2.ListAlertsRequest(**filters), timeout=5)
    return [a.alert_id for a in reply.alerts]


async def settled(es: AsyncElasticsearch, index: str, alert_id: str, state: int, within: float = 10.0) -> None:
    """Wait until the alert's document in ``index`` is in ``state`` (monitor indexes it after Kafka took it),
    then refresh the index so searches see it."""
    name = monitor_events.AlertState.Name(state)
    async with asyncio.timeout(within):
        while True:
            found = await es.options(ignore_status=(404, 503)).get(index=index, id=alert_id)
            if found.body.get("found") and found.body["_source"]["alert"]["state"] == name:
                await es.indices.refresh(index=index)
                return
            await asyncio.sleep(0.1)


async def test_a_latency_alert_fires_with_a_trace_id_is_acknowledged_and_resolves(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    es: AsyncElasticsearch,
    record_property: Callable[[str, object], None],
) -> None:
    predictions_topic = await make_topic("predictions")
    alerts_topic = await make_topic("alerts", partitions=1)
    prefix = f"it-{unique}"
    settings = MonitorSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        elasticsearch_url=endpoints.elasticsearch_url,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-monitor-slo-{unique}",
        topics=[predictions_topic],
        dlq_topics=[],
        registry_topic=await make_topic("registry", partitions=1),
        alerts_topic=alerts_topic,
        index_prefix=prefix,
        slo_interval_seconds=0.5,
        slo_window_seconds=WINDOW_S,
        slo_slot_seconds=1.0,
        slo_min_requests=5,
        slo_latency_p99_ms=THRESHOLD_MS,
        slo_fallback_rate=0.0,
        slo_burn_rate=0.0,
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
    alerts = AIOKafkaConsumer(
        alerts_topic, bootstrap_servers=endpoints.kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await alerts.start()
    model = f"m_{unique}"
    try:
        await publish(producer, predictions_topic, model, 20, 10.0)
        slow = await publish(producer, predictions_topic, model, 10, 900.0)
        published = time.perf_counter()
        fired = await next_alert(alerts, monitor_events.ALERT_STATE_FIRING)
        seconds = time.perf_counter() - published
        print(f"last slow prediction published -> latency alert on the topic: {seconds:.2f} s")
        record_property("monitor_latency_alert_seconds", round(seconds, 2))
        assert (fired.rule, fired.kind, fired.model_name) == ("latency_p99", monitor_events.ALERT_KIND_SLO, model)
        assert fired.trace_id in slow
        assert fired.value == pytest.approx(900.0, rel=0.05) and fired.threshold == THRESHOLD_MS

        levels = (await stub.GetServiceLevels(monitor_pb2.GetServiceLevelsRequest(model_name=model), timeout=5)).levels
        assert levels.requests == 30 and levels.latency_p99_ms == pytest.approx(900.0, rel=0.05)
        assert levels.latency_p50_ms == pytest.approx(10.0, rel=0.05)

        index = index_names(prefix)["alerts"]
        firing = monitor_events.ALERT_STATE_FIRING
        await settled(es, index, fired.alert_id, firing)
        assert await listed(stub, model_name=model, state=firing) == [fired.alert_id]
        assert await listed(stub, model_name=model, kind=monitor_events.ALERT_KIND_SLO) == [fired.alert_id]
        assert await listed(stub, model_name=model, state=monitor_events.ALERT_STATE_RESOLVED) == []
        assert await listed(stub, model_name=model, feature="v:f") == []

        acked = await stub.AcknowledgeAlert(
            monitor_pb2.AcknowledgeAlertRequest(alert_id=fired.alert_id, actor="it-ops"), timeout=5
        )
        assert acked.alert.state == monitor_events.ALERT_STATE_ACKNOWLEDGED and acked.alert.acknowledged_by == "it-ops"
        await es.indices.refresh(index=index)
        assert await listed(stub, model_name=model, state=monitor_events.ALERT_STATE_ACKNOWLEDGED) == [fired.alert_id]
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.AcknowledgeAlert(monitor_pb2.AcknowledgeAlertRequest(alert_id="nope", actor="x"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        await asyncio.sleep(WINDOW_S + 1)  # the slow answers leave the window
        await publish(producer, predictions_topic, model, 20, 10.0)
        resolved = await next_alert(alerts, monitor_events.ALERT_STATE_RESOLVED)
        assert resolved.alert_id == fired.alert_id and resolved.acknowledged_by == "it-ops"
        await settled(es, index, fired.alert_id, monitor_events.ALERT_STATE_RESOLVED)
        assert await listed(stub, model_name=model, state=monitor_events.ALERT_STATE_RESOLVED) == [fired.alert_id]
        assert await listed(stub, model_name=model) == [fired.alert_id], "one alert, updated in place"

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetServiceLevels(monitor_pb2.GetServiceLevelsRequest(model_name="never-seen"), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await alerts.stop()
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)
