"""The ingest handler: one partition batch of upstream records -> canonical topic, DLQ and lake.

``IngestPipeline.handle_batch`` is the ``EventConsumer`` batch handler (transport-free: it sees
``Event``s and an ``EventSender``). For a batch of one upstream partition it

1. validates every record with the current version of its topic's source (``SourceCatalog``: the
   registry's latest version, picked up while running); records of a topic without a source are
   dead-lettered as ``UNKNOWN_SOURCE``;
2. claims the event ids of the valid records in ``SeenEvents`` (a bounded cache in front of the
   durable ``SeenStore``, shared by every replica): a record whose id was first accepted at another
   upstream position is a duplicate and dropped (counted in ``aimesh_ingest_duplicates_dropped_total``);
   one first accepted at its own position is new or a redelivery and goes on. Durable when done (S);
3. starts writing the accepted records to the lake in a worker thread, as the files of offsets
   ``first..last`` of the partition (``aimesh.core.lake.replace_partition_range``: every file of the
   partition starting at or after ``first`` is replaced; one file per event date), durable when done (L);
4. meanwhile queues each accepted record as a ``CanonicalRecord`` on the records topic (key = entity key,
   ``ce_id`` = event id) and each rejected one as a ``DeadLetter`` on the DLQ topic (key = source,
   ``ce_id`` = ``dlq:<topic>/<partition>/<offset>``, PII and PANs masked in its payload copy and headers,
   see ``aimesh.ingest.validation``);
5. returns only when Kafka acknowledged every record and the lake files are durable. When a send
   fails it raises only after the lake write ended, so a retry never writes the same files concurrently.

Exactly once. In production the consumer runs each batch in a Kafka transaction
(``EventConsumer(transactions=TransactionalProducer)``): the sends of step 3 and the batch's next
offset commit together (C) after this returns, so the order is S -> L -> C. Every crash point:

- before S: nothing is durable. The open transaction is aborted when the replica restarts (its
  transactional id fences the zombie) or by the broker after the transaction timeout; the batch is
  redelivered from the committed offset.
- after S, before C (L done or not): the transaction's canonical and DLQ records are aborted, never
  visible to ``read_committed`` readers. The redelivery starts at the committed offset, which is
  this batch's first offset, so (a) its lake write replaces every file this attempt wrote, whatever
  the new batch boundaries, and (b) its records come at the same positions as their claims, so they
  are accepted again, not dropped; a copy of an id at another position is dropped again, because the
  claim (the id's first position) never changes. Another replica seeing a copy of a claimed id drops
  it too: the claimed position will be accepted when it is redelivered.
- during C: Kafka decides atomically; a transaction whose commit was not recorded is aborted (as
  above), one that was is complete.
- after C: the offsets are past the batch; its lake files are below every later batch's first offset
  and never touched again; its ids stay claimed, so later copies are dropped.

Hence each valid record is on the canonical topic and in the lake exactly once and each rejected one
on the DLQ exactly once, for ``read_committed`` readers and readers of the lake. The one loss case: a
record claimed by an attempt that crashed and then deleted upstream (retention) before the redelivery;
its later copies are dropped. Without ``transactions`` (``build_consumer`` without a producer) the
consumer commits offsets after this returns: the lake and the claims stay exactly-once, the canonical
and DLQ records at-least-once with the same ``ce_id``.

Memory: one batch (at most ``max_batch`` records) is in hand at a time and the next poll waits until
this returns, so a slow lake or Kafka slows consumption instead of buffering; the consumer's prefetch
is bounded by ``fetch_max_bytes``/``max_partition_fetch_bytes`` (see ``aimesh.ingest.settings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from opentelemetry.trace import Span, SpanKind

from aimesh.core import lake
from aimesh.core import metrics as core_metrics
from aimesh.core.bus import EventSender
from aimesh.core.deadletter import DeadLetterBounds, build_dead_letter, dead_letter_event_id
from aimesh.core.events import Event
from aimesh.core.pan import PanMasker
from aimesh.core.tracing import child_span, record_spans, tracer
from aimesh.ingest import metrics
from aimesh.ingest.canonical import canonical_record
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.dedupe import Position, SeenEvents, SeenStore
from aimesh.ingest.lake_tables import lake_schema, tables_by_day
from aimesh.ingest.sources import SourceDefinition
from aimesh.ingest.validation import Rejection, ValidRecord, headers_note, masked_headers

log = logging.getLogger(__name__)
_tracer = tracer(__name__)
SERVICE = "ingest"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch did (also what was counted in the metrics)."""

    accepted: int
    rejected: int
    duplicates: int


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


class IngestPipeline:
    """Validates upstream batches and makes their effects durable (see the module doc)."""

    def __init__(
        self,
        catalog: SourceCatalog,
        sender: EventSender,
        *,
        lake_root: Path,
        records_topic: str,
        dlq_topic: str,
        dedupe_capacity: int = 200_000,
        seen_store: SeenStore | None = None,
        dead_letter_bounds: DeadLetterBounds | None = None,
    ) -> None:
        """Each batch is validated against the current version of its topic's source in ``catalog``.

        ``seen_store`` makes duplicate drops durable and shared; without it only ``dedupe_capacity``
        recent ids of this process are remembered. ``dead_letter_bounds`` keeps every DLQ record under the
        producer's limit (an oversized payload is stored aside first); without it one too large fails the batch.
        """
        self._catalog = catalog
        self._schemas: dict[tuple[str, int], pa.Schema] = {}
        self._sender = sender
        self._lake_root = lake_root
        self._records_topic = records_topic
        self._dlq_topic = dlq_topic
        self._seen = SeenEvents(dedupe_capacity, seen_store)
        self._bounds = dead_letter_bounds

    @property
    def masker(self) -> PanMasker:
        """What tokenises PANs outside a validator (the catalog's); the consumer's own dead letters use it."""
        return self._catalog.masker

    @property
    def topics(self) -> tuple[str, ...]:
        """The upstream topics to consume now: the intake topic of every source in the catalog (see
        ``aimesh.ingest.catalog``: it changes while the service runs)."""
        return self._catalog.topics

    async def handle_batch(self, events: Sequence[Event]) -> BatchResult:
        """Handle one partition's batch (same topic and partition, ascending offsets); see the module doc.

        Raises whatever the seen-events store, Kafka or the lake raised; nothing of the batch may be
        committed then (the claims it made stay: the redelivery matches them).
        """
        if not events:
            return BatchResult(0, 0, 0)
        with record_spans(_tracer, f"ingest {events[0].topic}", events) as spans:
            return await self._handle_batch(events, {e.offset: span for e, span in zip(events, spans, strict=True)})

    async def _handle_batch(self, events: Sequence[Event], spans: dict[int, Span]) -> BatchResult:
        """``handle_batch`` with each event's CONSUMER span (by offset): validation and the canonical
        record's publishing run in it, so the record carries the upstream event's trace on."""
        started = time.perf_counter()
        first = events[0]
        source = self._catalog.for_topic(first.topic)
        if source is None:
            await asyncio.gather(*[await self._reject(e, None, self._unknown_source(e)) for e in events])
            return BatchResult(0, len(events), 0)
        name = source.definition.name
        valid: list[tuple[Event, ValidRecord]] = []
        rejects: list[tuple[Event, Rejection]] = []
        for event in events:
            with child_span(_tracer, spans[event.offset], "validate") as validating:
                outcome = source.validator.validate_event(event)
                verdict = outcome.reason if isinstance(outcome, Rejection) else "valid"
                validating.set_attribute("aimesh.ingest.outcome", verdict)
            if isinstance(outcome, Rejection):
                rejects.append((event, outcome))
            else:
                valid.append((event, outcome))
        candidates: dict[str, Position] = {}
        for event, record in valid:
            candidates.setdefault(record.event_id, _position(event))
        first_positions = await self._seen.first_positions(name, candidates)
        accepted = [(e, r) for e, r in valid if first_positions[r.event_id] == _position(e)]
        duplicates = len(valid) - len(accepted)

        ingest_time = now_us()
        tables = tables_by_day(
            self._lake_schema(source.definition), [r for _, r in accepted], ingest_time_us=ingest_time
        )
        lake_write = asyncio.ensure_future(
            asyncio.to_thread(
                lake.replace_partition_range,
                self._lake_root,
                name,
                partition=first.partition,
                first=first.offset,
                last=events[-1].offset,
                tables_by_day=tables,
            )
        )
        try:
            acks = [await self._reject(event, source.definition, rejection) for event, rejection in rejects]
            send, definition, records_topic = self._sender.send_event, source.definition, self._records_topic
            for event, record in accepted:
                position = (event.topic, event.partition, event.offset)
                message = canonical_record(record, definition, ingest_time_us=ingest_time, upstream=position)
                with child_span(_tracer, spans[event.offset], f"{records_topic} publish", SpanKind.PRODUCER):
                    acks.append(await send(records_topic, message, key=record.entity_key, event_id=record.event_id))
            await asyncio.gather(*acks)
        except Exception:
            with contextlib.suppress(Exception):
                await lake_write  # never two writes of this partition's files at once (the retry's and this one)
            raise
        await lake_write
        metrics.RECORDS_ACCEPTED.labels(name).inc(len(accepted))
        if dropped := sum(r.undeclared_dropped for _, r in accepted):
            metrics.UNDECLARED_DROPPED.labels(name).inc(dropped)
        if pans := sum(r.pans_masked for _, r in accepted):
            metrics.PANS_MASKED.labels(name, "record").inc(pans)
        for _, rejection in rejects:
            metrics.RECORDS_REJECTED.labels(name, rejection.reason).inc()
            core_metrics.EVENTS_DEAD_LETTERED.labels(SERVICE, first.topic, rejection.reason).inc()
        if duplicates:
            metrics.DUPLICATES_DROPPED.labels(name).inc(duplicates)
        metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
        return BatchResult(len(accepted), len(rejects), duplicates)

    def _lake_schema(self, definition: SourceDefinition) -> pa.Schema:
        key = (definition.name, definition.version)
        schema = self._schemas.get(key)
        if schema is None:
            schema = self._schemas[key] = lake_schema(definition)
        return schema

    def _unknown_source(self, event: Event) -> Rejection:
        """The rejection of a record no source reads: its bytes scrubbed like an undecodable payload's."""
        payload, count = self._catalog.masker.scrub(event.value)
        message = f"no source reads topic {event.topic}"
        if count:
            message += f" ({count} run(s) of 12-19 digits or PANs, possibly PII, replaced by their tokens)"
        return Rejection("UNKNOWN_SOURCE", message, dlq_payload=payload)

    async def _reject(self, event: Event, source: SourceDefinition | None, rejection: Rejection) -> asyncio.Future[Any]:
        """Queue the dead letter of ``event``: headers with their PANs tokenised (the payload copy is masked
        by the validator already)."""
        headers, pan_headers = masked_headers(self._catalog.masker, event.headers)
        message = rejection.message + headers_note(pan_headers)
        if rejection.masked_fields:
            masked = ", ".join(rejection.masked_fields)
            message += f" (PII fields {masked} replaced by their tokens in original_payload)"
        source_name = source.name if source is not None else ""
        if pan_headers:
            metrics.PANS_MASKED.labels(source_name, "dlq_header").inc(len(pan_headers))
        log.warning(
            "record rejected",
            extra={
                "ingest.source": source_name,
                "ingest.reason": rejection.reason,
                "ingest.field": rejection.field,
                "ingest.detail": message,
                "event.id": rejection.event_id,
                "kafka.position": f"{event.topic}/{event.partition}/{event.offset}",
            },
        )
        dead_letter = build_dead_letter(
            payload=rejection.dlq_payload,
            headers=headers,
            service=SERVICE,
            source=source_name,
            reason_code=rejection.reason,
            message=message,
            event_id=rejection.event_id,
            field=rejection.field,
            position=_position(event),
            masked_fields=rejection.masked_fields,
        )
        if self._bounds is not None:
            dead_letter = await self._bounds.fit(dead_letter)
        return await self._sender.send_event(
            self._dlq_topic, dead_letter, key=source_name or event.topic, event_id=dead_letter_event_id(event)
        )


def _position(event: Event) -> tuple[str, int, int]:
    return (event.topic, event.partition, event.offset)
