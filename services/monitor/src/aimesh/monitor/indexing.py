"""Indexing consumed events into Elasticsearch, one bulk request per polled batch (transport-free).

``EventIndexer.handle_batch`` is an ``EventConsumer`` batch handler: it maps each ``Prediction``,
``LogRecord`` and ``DeadLetter`` event to its document (id = the event id), writes them in one bulk
request and returns only when they are durable in Elasticsearch, so the consumer commits the batch's
offsets after that. Outcomes per event:

- indexed (a map over ``max_map_entries`` keys is cut and flagged, see ``aimesh.monitor.documents``);
- dead-lettered onto monitor's ``aimesh.monitor.dlq.v1`` before the handler returns, with its
  reason: ``DECODE_ERROR`` / ``UNEXPECTED_EVENT_TYPE`` (not an event monitor indexes),
  ``DOCUMENT_TOO_LARGE`` (its encoded document is over ``max_document_bytes``, so it is never sent, or
  Elasticsearch found it too large), ``TOO_MANY_FIELDS`` or ``DOCUMENT_REJECTED`` (Elasticsearch
  refused it for good). The batch's other documents are indexed all the same;
- a dead letter (from any service's DLQ) whose own document is refused is logged and counted, never
  dead-lettered again, so nothing loops through monitor's DLQ.

Each ``Prediction`` is traced by a CONSUMER span ``monitor index prediction`` continuing the event's
trace (the ``Score`` that produced it), ending once the bulk request answered; the document's
``trace.id`` is that trace's id. Log records and dead letters are indexed untraced.

Once a batch is indexed, its indexed predictions are handed to the ``observer`` (the drift windows,
``aimesh.monitor.drift_windows``), so a batch retried after a failed bulk is observed once; an observer
error is logged and never fails the batch.

An unreachable or overloaded Elasticsearch (connection error, timeout, 429, 5xx) raises
``Unavailable`` and nothing is dead-lettered: the consumer retries the whole batch with backoff
(re-indexing the same ids changes nothing), so such a document is never skipped. A dead letter whose
send fails raises too (the batch is retried; its ``ce_id`` is derived from the position, so a repeat
is the same entry).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core import metrics as core_metrics
from aimesh.core.bus import DeadLetterSink
from aimesh.core.deadletter import DEAD_LETTER_TYPES
from aimesh.core.events import Event, PoisonEvent
from aimesh.core.failures import describe
from aimesh.core.tracing import record_spans, tracer
from aimesh.monitor import metrics
from aimesh.monitor.bulk import IndexRequest, encode_source
from aimesh.monitor.documents import (
    DEFAULT_MAX_MAP_ENTRIES,
    dead_letter_document,
    index_names,
    log_document,
    prediction_document,
    trace_id_of,
)
from aimesh.monitor.elastic import ElasticStore

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

PREDICTION_TYPE = inference_events.Prediction.DESCRIPTOR.full_name
LOG_RECORD_TYPE = monitor_events.LogRecord.DESCRIPTOR.full_name
DEFAULT_MAX_DOCUMENT_BYTES = 512 * 1024
SERVICE = "monitor"


def index_request(event: Event, prefix: str, *, max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES) -> IndexRequest:
    """The document for ``event``; raises ``PoisonEvent`` for an unknown type or a bad payload."""
    indices = index_names(prefix)
    if event.ce_type == PREDICTION_TYPE:
        prediction = event.parse(inference_events.Prediction)
        return prediction_request(prediction, event, prefix, max_map_entries=max_map_entries)
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


def prediction_request(
    prediction: inference_events.Prediction,
    event: Event,
    prefix: str,
    *,
    max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES,
) -> IndexRequest:
    """The document of a parsed ``Prediction`` (id = its event id, else the event's)."""
    document = prediction_document(prediction, trace_id_of(event), max_map_entries=max_map_entries)
    return IndexRequest(index_names(prefix)["predictions"], prediction.event_id or event.id, document)


PredictionObserver = Callable[[Sequence[inference_events.Prediction]], None]
"""Called with the predictions of a batch once they are indexed (e.g. the drift windows)."""


def _encode(request: IndexRequest) -> bytes:
    """``request``'s source as it is sent (and sized); raises ``PoisonEvent`` when it is not JSON."""
    try:
        return encode_source(request.document)
    except TypeError as exc:
        raise PoisonEvent("DOCUMENT_REJECTED", f"its {request.index} document is not JSON: {exc}") from exc


class EventIndexer:
    """Batch handler over an ``ElasticStore`` (see the module doc)."""

    def __init__(
        self,
        store: ElasticStore,
        dead_letters: DeadLetterSink,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES,
        observer: PredictionObserver | None = None,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._max_document_bytes = max_document_bytes
        self._max_map_entries = max_map_entries
        self._observer = observer

    async def handle_batch(self, events: Sequence[Event]) -> None:
        predictions = [e for e in events if e.ce_type == PREDICTION_TYPE]
        with record_spans(_tracer, "monitor index prediction", predictions):
            await self._index_batch(events)

    async def _index_batch(self, events: Sequence[Event]) -> None:
        requests: list[IndexRequest] = []
        origin: dict[str, Event] = {}
        predictions: dict[str, inference_events.Prediction] = {}
        for event in events:
            prediction: inference_events.Prediction | None = None
            try:
                if event.ce_type == PREDICTION_TYPE:
                    prediction = event.parse(inference_events.Prediction)
                    request = prediction_request(
                        prediction, event, self._store.prefix, max_map_entries=self._max_map_entries
                    )
                else:
                    request = index_request(event, self._store.prefix, max_map_entries=self._max_map_entries)
                encoded = _encode(request)
                size = len(encoded)
                if size > self._max_document_bytes:
                    raise PoisonEvent(
                        "DOCUMENT_TOO_LARGE",
                        f"its {request.index} document is {size} bytes > limit {self._max_document_bytes} "
                        "(MONITOR_MAX_DOCUMENT_BYTES)",
                    )
            except PoisonEvent as poison:
                await self._dead_letter(event, poison.reason_code, poison.message)
                continue
            requests.append(dataclasses.replace(request, encoded=encoded))
            origin[request.doc_id] = event
            if prediction is not None:
                predictions[request.doc_id] = prediction
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
        self._observe([p for doc_id, p in predictions.items() if doc_id not in refused])

    def _observe(self, indexed: Sequence[inference_events.Prediction]) -> None:
        if self._observer is None:
            return
        try:
            self._observer(indexed)
        except Exception as exc:  # drift is best effort: it never holds the indexed batch back
            log.error("drift windows could not count a batch: %s", describe(exc))

    async def _dead_letter(self, event: Event, reason_code: str, message: str) -> None:
        await self._dead_letters.send(event, reason_code, message)
        core_metrics.EVENTS_DEAD_LETTERED.labels(SERVICE, event.topic, reason_code).inc()
        log.warning(
            "event dead-lettered", extra={"event.id": event.id, "reason": reason_code, "detail": message[:2000]}
        )
