"""Indexing consumed events into Elasticsearch, one bulk request per polled batch (transport-free).

``EventIndexer.handle_batch`` is an ``EventConsumer`` batch handler: it maps each ``Prediction`` and
``LogRecord`` event to its document (id = the event id), writes them in one bulk request and returns
only when they are durable in Elasticsearch, so the consumer commits the batch's offsets after that.
Undecodable events and documents Elasticsearch refuses for good are dead-lettered with the reason
(before the handler returns); an unreachable or overloaded Elasticsearch raises, and the consumer
retries the whole batch (re-indexing the same ids changes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.bus import DeadLetterSink
from aimesh.core.events import Event, PoisonEvent
from aimesh.monitor import metrics
from aimesh.monitor.documents import index_names, log_document, prediction_document, trace_id_of
from aimesh.monitor.elastic import ElasticStore, IndexRequest

PREDICTION_TYPE = inference_events.Prediction.DESCRIPTOR.full_name
LOG_RECORD_TYPE = monitor_events.LogRecord.DESCRIPTOR.full_name


def index_request(event: Event, prefix: str) -> IndexRequest:
    """The document for ``event``; raises ``PoisonEvent`` for an unknown type or a bad payload."""
    indices = index_names(prefix)
    if event.ce_type == PREDICTION_TYPE:
        prediction = event.parse(inference_events.Prediction)
        doc_id = prediction.event_id or event.id
        return IndexRequest(indices["predictions"], doc_id, prediction_document(prediction, trace_id_of(event)))
    if event.ce_type == LOG_RECORD_TYPE:
        record = event.parse(monitor_events.LogRecord)
        return IndexRequest(indices["logs"], event.id, log_document(record, event.id))
    raise PoisonEvent(
        "MALFORMED_PAYLOAD", f"monitor indexes {PREDICTION_TYPE} and {LOG_RECORD_TYPE}, not {event.ce_type}"
    )


class EventIndexer:
    """Batch handler over an ``ElasticStore`` (see the module doc)."""

    def __init__(self, store: ElasticStore, dead_letters: DeadLetterSink) -> None:
        self._store = store
        self._dead_letters = dead_letters

    async def handle_batch(self, events: Sequence[Event]) -> None:
        requests: list[IndexRequest] = []
        origin: dict[str, Event] = {}
        for event in events:
            try:
                request = index_request(event, self._store.prefix)
            except PoisonEvent as poison:
                await self._dead_letters.send(event, poison.reason_code, poison.message)
                continue
            requests.append(request)
            origin[request.doc_id] = event
        rejected = await self._store.bulk_index(requests)
        refused = {r.doc_id for r in rejected}
        for r in rejected:
            await self._dead_letters.send(
                origin[r.doc_id], "INVALID_VALUE", f"Elasticsearch refused it: {r.status} {r.reason}"
            )
        for request in requests:
            if request.doc_id in refused:
                metrics.DOCUMENTS_REJECTED.labels(request.index).inc()
            else:
                metrics.DOCUMENTS_INDEXED.labels(request.index).inc()
