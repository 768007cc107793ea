"""AlertBook against real Kafka and the real Elasticsearch.

What it proves: a raise, an acknowledgement and a resolve each reach the alerts topic (event ids
``<alert_id>:1..3``, key = the model) and leave the alert's latest state in ``<prefix>-alerts`` (one
document, ``_id`` = alert id); a second book loaded from the index after a restart continues the open
alert (same id, next revision) instead of raising it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.app import connect_producer
from aimesh.monitor.alerting import AlertBook
from aimesh.monitor.documents import index_names, index_templates
from aimesh.monitor.elastic import AlertQuery, ElasticStore
from aimesh.monitor.settings import MonitorSettings

pytestmark = [pytest.mark.integration]


@pytest.fixture
async def store(endpoints: Any, unique: str) -> AsyncIterator[ElasticStore]:
    prefix = f"it-{unique}"
    store = ElasticStore(endpoints.elasticsearch_url, prefix)
    await store.ensure_templates()
    try:
        yield store
    finally:
        es = store.client
        await es.indices.delete(index=list(index_names(prefix).values()), ignore_unavailable=True)
        for name in index_templates(prefix):
            await es.options(ignore_status=404).indices.delete_index_template(name=name)
        await store.close()


async def _events(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, str, monitor_events.Alert]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[tuple[bytes | None, str, monitor_events.Alert]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        ce_id = dict(r.headers).get("ce_id", b"").decode()
                        found.append((r.key, ce_id, monitor_events.Alert.FromString(r.value)))
    finally:
        await consumer.stop()
    return found


async def test_alert_lifecycle_on_kafka_and_elasticsearch(
    endpoints: Any, make_topic: Callable[..., Any], unique: str, store: ElasticStore
) -> None:
    topic = await make_topic("alerts", partitions=1)
    settings = MonitorSettings(kafka_bootstrap=endpoints.kafka_bootstrap, ship_logs=False)
    producer = await connect_producer(settings)
    model = f"m_{unique}"
    try:

        async def fire(book: AlertBook, value: float) -> monitor_events.Alert:
            return await book.fire(
                rule="latency_p99",
                kind=monitor_events.ALERT_KIND_SLO,
                severity=monitor_events.SEVERITY_WARNING,
                model_name=model,
                service="inference",
                message=f"p99 {value} ms over 300 s",
                value=value,
                threshold=200.0,
                trace_id="0af7651916cd43dd8448eb211c80319c",
            )

        first = AlertBook(store, producer, topic, update_interval_s=0.0)
        raised = await fire(first, 350.0)
        acked = await first.acknowledge(raised.alert_id, "ops")
        assert acked.state == monitor_events.ALERT_STATE_ACKNOWLEDGED

        restarted = AlertBook(store, producer, topic, update_interval_s=0.0)
        await store.refresh()
        assert await restarted.load() == 1
        updated = await fire(restarted, 400.0)
        assert updated.alert_id == raised.alert_id and updated.state == monitor_events.ALERT_STATE_ACKNOWLEDGED
        resolved = await restarted.resolve(rule="latency_p99", model_name=model, service="inference")
        assert resolved is not None and resolved.state == monitor_events.ALERT_STATE_RESOLVED

        events = await _events(endpoints.kafka_bootstrap, topic, 4)
        assert [(key, ce_id) for key, ce_id, _ in events] == [
            (model.encode(), f"{raised.alert_id}:{n}") for n in (1, 2, 3, 4)
        ]
        assert [a.state for _, _, a in events] == [
            monitor_events.ALERT_STATE_FIRING,
            monitor_events.ALERT_STATE_ACKNOWLEDGED,
            monitor_events.ALERT_STATE_ACKNOWLEDGED,
            monitor_events.ALERT_STATE_RESOLVED,
        ]
        assert events[2][2].value == 400.0

        await store.refresh()
        listed, more = await store.search_alerts(AlertQuery(model_name=model))
        assert [a.alert_id for a in listed] == [raised.alert_id] and not more
        assert listed[0].state == monitor_events.ALERT_STATE_RESOLVED
        assert listed[0].acknowledged_by == "ops" and listed[0].trace_id == "0af7651916cd43dd8448eb211c80319c"
        by_state, _ = await store.search_alerts(
            AlertQuery(model_name=model, states=(monitor_events.ALERT_STATE_FIRING,))
        )
        assert by_state == []
        assert await store.open_alerts() == []
    finally:
        await producer.stop()
