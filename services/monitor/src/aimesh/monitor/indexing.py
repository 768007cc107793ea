"""Indexing consumed events into Elasticsearch, one bulk request per polled batch (transport-free).

``EventIndexer.handle_batch`` is an ``EventConsumer`` batch handler: it maps each ``Prediction``,
``LogRecord`` and ``DeadLetter`` event to its document (id = the event id), writes them in one bulk
request and returns only when they are durable in Elasticsearch, so the consumer commits the batch's
offsets after that. Outcomes per event:

- indexed (a map over ``max_map_entries`` keys is cut and flagged, see ``aimesh.monitor.documents``);
- dead-lettered onto monitor's ``aimesh.monitor.dlq.v1`` before the handler returns, with its
  reason: ``DECODE_ERROR`` / ``UNEXPECTED_EVENT_TYPE`` (not an event monitor indexes),
  ``DOCUMENT_TOO_LARGE`` (its JSON document is over ``max_document_bytes``, so it is never sent, or
  Elasticsearch found it too large), ``TOO_MANY_FIELDS`` or ``DOCUMENT_REJECTED`` (Elasticsearch
  refused it for good). The batch's other documents are indexed all the same;
- a dead letter (from any service's DLQ) whose own document is refused is logged and counted, never
  dead-lettered again, so nothing loops through monitor's DLQ.

An unreachable or overloaded Elasticsearch (connection error, timeout, 429, 5xx) raises
``Unavailable`` and nothing is dead-lettered: the consumer retries the whole batch with backoff
(re-indexing the same ids changes nothing), so such a document is never skipped. A dead letter whose
send fails raises too (the batch is retried; its ``ce_id`` is derived from the position, so a repeat
is the same entry).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core import metrics as core_metrics
from aimesh.core.bus import DeadLetterSink
from aimesh.core.deadletter import DEAD_LETTER_TYPES
from aimesh.core.events import Event, PoisonEvent
from aimesh.monitor import metrics
from aimesh.monitor.documents import (
    DEFAULT_MAX_MAP_ENTRIES,
    dead_letter_document,
    index_names,
    log_document,
    prediction_document,
    trace_id_of,
)
from aimesh.monitor.elastic import ElasticStore, IndexRequest

log = logging.getLogger(__name__)

PREDICTION_TYPE = inference_events.Prediction.DESCRIPTOR.full_name
LOG_RECORD_TYPE = monitor_events.LogRecord.DESCRIPTOR.full_name
DEFAULT_MAX_DOCUMENT_BYTES = 512 * 1024
SERVICE = "monitor"


def index_request(event: Event, prefix: str, *, max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES) -> IndexRequest:
    """The document for ``event``; raises ``PoisonEvent`` for an unknown type or a bad payload."""
    indices = index_names(prefix)
    if event.ce_type == PREDICTION_TYPE:
        prediction = event.parse(inference_events.Prediction)
        doc_id = prediction.event_id or event.id
        document = prediction_document(prediction, trace_id_of(event), max_map_entries=max_map_entries)
        return IndexRequest(indices["predictions"], doc_id, document)
    if event.ce_type == LOG_RECORD_TYPE:
        record = event.parse(monitor_events.LogRecord)
        return IndexRequest(indices["logs"], event.id, log_document(record, event.id, max_map_entries=max_map_entries))
    if event.ce_type in DEAD_LETTER_TYPES:
        letter = deadletter_pb2.DeadLetter()
        try:
            letter.ParseFromString(event.value)
        except Exception as exc:
            raise PoisonEvent("DECODE_ERROR", f"not a valid DeadLetter: {exc}") from exc
        return IndexRequest(indices["deadletters"], event.id, dead_letter_document(letter, event))
    raise PoisonEvent(
        "UNEXPECTED_EVENT_TYPE",
        f"monitor indexes {PREDICTION_TYPE}, {LOG_RECORD_TYPE} and dead letters, not {event.ce_type}",
    )


class EventIndexer:
    """Batch handler over an ``ElasticStore`` (see the module doc)."""

    def __init__(
        self,
        store: ElasticStore,
        dead_letters: DeadLetterSink,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._max_document_bytes = max_document_bytes
        self._max_map_entries = max_map_entries

    async def handle_batch(self, events: Sequence[Event]) -> None:
        requests: list[IndexRequest] = []
        origin: dict[str, Event] = {}
        for event in events:
            try:
                request = index_request(event, self._store.prefix, max_map_entries=self._max_map_entries)
                size = len(json.dumps(request.document, ensure_ascii=False).encode())
                if size > self._max_document_bytes:
                    raise PoisonEvent(
                        "DOCUMENT_TOO_LARGE",
                        f"its {request.index} document is {size} bytes > limit {self._max_document_bytes} "
                        "(MONITOR_MAX_DOCUMENT_BYTES)",
                    )
            except PoisonEvent as poison:
                await self._dead_letter(event, poison.reason_code, poison.message)
                continue
            requests.append(request)
            origin[request.doc_id] = event
        rejected = await self._store.bulk_index(requests)
        refused = {r.doc_id for r in rejected}
        for r in rejected:
            event = origin[r.doc_id]
            detail = f"Elasticsearch refused it: {r.status} {r.reason}"
            if event.ce_type in DEAD_LETTER_TYPES:
                log.error(
                    "dead-letter document refused; not dead-lettered again",
                    extra={"event.id": event.id, "reason": r.reason_code, "detail": detail[:2000]},
                )
                continue
            await self._dead_letter(event, r.reason_code, detail)
        for request in requests:
            if request.doc_id in refused:
                metrics.DOCUMENTS_REJECTED.labels(request.index).inc()
            else:
                metrics.DOCUMENTS_INDEXED.labels(request.index).inc()

    async def _dead_letter(self, event: Event, reason_code: str, message: str) -> None:
        await self._dead_letters.send(event, reason_code, message)
        core_metrics.EVENTS_DEAD_LETTERED.labels(SERVICE, event.topic, reason_code).inc()
        log.warning(
            "event dead-lettered", extra={"event.id": event.id, "reason": reason_code, "detail": message[:2000]}
        )
