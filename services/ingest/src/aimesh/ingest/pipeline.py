"""The ingest handler: one partition batch of upstream records -> canonical topic, DLQ and lake.

``IngestPipeline.handle_batch`` is the ``EventConsumer`` batch handler (transport-free: it sees
``Event``s and an ``EventSender``). For a batch of one upstream partition it

1. validates every record (``Validator``) and drops upstream duplicates (``SeenEvents``);
2. queues each accepted record as a ``CanonicalRecord`` on the records topic (key = entity key,
   ``ce_id`` = event id) and each rejected one as a ``DeadLetter`` on the DLQ topic (key = source,
   ``ce_id`` = ``dlq:<topic>/<partition>/<offset>``, PII masked when the payload is a JSON object);
3. meanwhile writes the accepted records to the lake as the files of offsets ``first..last`` of the
   partition (``aimesh.core.lake.replace_partition_range``, one file per event date);
4. returns only when Kafka acknowledged every record and the lake files are durable.

The consumer commits the offsets after it returns. If anything fails the exception propagates, the
consumer rewinds to the batch's first offset and the whole batch is redone: the lake files of that
range are replaced, and the canonical/DLQ records may be published again with the same ``ce_id``
(at-least-once; downstream consumers dedupe on it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from aimesh.core import lake
from aimesh.core import metrics as core_metrics
from aimesh.core.bus import EventSender
from aimesh.core.deadletter import build_dead_letter, dead_letter_event_id
from aimesh.core.events import Event
from aimesh.ingest import metrics
from aimesh.ingest.canonical import canonical_record
from aimesh.ingest.dedupe import SeenEvents
from aimesh.ingest.lake_tables import lake_schema, tables_by_day
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.sources import SourceDefinition
from aimesh.ingest.validation import Rejection, Validator, ValidRecord

log = logging.getLogger(__name__)
SERVICE = "ingest"


@dataclass(frozen=True, slots=True)
class _Source:
    definition: SourceDefinition
    validator: Validator
    schema: pa.Schema


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
        sources: Sequence[SourceDefinition],
        tokenizer: Tokenizer,
        sender: EventSender,
        *,
        lake_root: Path,
        records_topic: str,
        dlq_topic: str,
        dedupe_capacity: int = 200_000,
        max_payload_bytes: int = 1024 * 1024,
    ) -> None:
        self._by_topic = {
            s.topic: _Source(s, Validator(s, tokenizer, max_payload_bytes=max_payload_bytes), lake_schema(s))
            for s in sources
        }
        self._sender = sender
        self._lake_root = lake_root
        self._records_topic = records_topic
        self._dlq_topic = dlq_topic
        self._seen = SeenEvents(dedupe_capacity)

    @property
    def topics(self) -> list[str]:
        """The upstream topics to consume, one per source."""
        return sorted(self._by_topic)

    async def handle_batch(self, events: Sequence[Event]) -> BatchResult:
        """Handle one partition's batch (same topic and partition, ascending offsets); see the module doc.

        Raises whatever Kafka or the lake raised; nothing of the batch may be committed then.
        """
        if not events:
            return BatchResult(0, 0, 0)
        started = time.perf_counter()
        first = events[0]
        source = self._by_topic.get(first.topic)
        if source is None:
            await asyncio.gather(*[await self._reject(e, None, self._unknown_source(e)) for e in events])
            return BatchResult(0, len(events), 0)
        ingest_time = now_us()
        pending: list[asyncio.Future[Any]] = []
        accepted: list[tuple[Event, ValidRecord]] = []
        in_batch: set[str] = set()
        rejected: list[str] = []
        duplicates = 0
        for event in events:
            outcome = source.validator.validate(event.value)
            if isinstance(outcome, Rejection):
                pending.append(await self._reject(event, source.definition, outcome))
                rejected.append(outcome.reason)
                continue
            if outcome.event_id in in_batch or self._seen.is_duplicate(outcome.event_id, _position(event)):
                duplicates += 1
                continue
            in_batch.add(outcome.event_id)
            accepted.append((event, outcome))
            message = canonical_record(
                outcome, source.definition, ingest_time_us=ingest_time, upstream=_position(event)
            )
            pending.append(
                await self._sender.send_event(
                    self._records_topic, message, key=outcome.entity_key, event_id=outcome.event_id
                )
            )
        tables = tables_by_day(source.schema, [r for _, r in accepted], ingest_time_us=ingest_time)
        written = asyncio.to_thread(
            lake.replace_partition_range,
            self._lake_root,
            source.definition.name,
            partition=first.partition,
            first=first.offset,
            last=events[-1].offset,
            tables_by_day=tables,
        )
        await asyncio.gather(written, *pending)
        for event, record in accepted:
            self._seen.remember(record.event_id, _position(event))
        name = source.definition.name
        metrics.RECORDS_ACCEPTED.labels(name).inc(len(accepted))
        for reason in rejected:
            metrics.RECORDS_REJECTED.labels(name, reason).inc()
            core_metrics.EVENTS_DEAD_LETTERED.labels(SERVICE, first.topic, reason).inc()
        if duplicates:
            metrics.DUPLICATES_DROPPED.labels(name).inc(duplicates)
        metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
        return BatchResult(len(accepted), len(rejected), duplicates)

    @staticmethod
    def _unknown_source(event: Event) -> Rejection:
        return Rejection("UNKNOWN_SOURCE", f"no source reads topic {event.topic}", dlq_payload=event.value)

    async def _reject(self, event: Event, source: SourceDefinition | None, rejection: Rejection) -> asyncio.Future[Any]:
        message = rejection.message
        if rejection.masked_fields:
            masked = ", ".join(rejection.masked_fields)
            message += f" (PII fields {masked} replaced by their tokens in original_payload)"
        source_name = source.name if source is not None else ""
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
            headers=event.headers,
            source=source_name,
            reason_code=rejection.reason,
            message=message,
            event_id=rejection.event_id,
            field=rejection.field,
            position=_position(event),
        )
        return await self._sender.send_event(
            self._dlq_topic, dead_letter, key=source_name or event.topic, event_id=dead_letter_event_id(event)
        )


def _position(event: Event) -> tuple[str, int, int]:
    return (event.topic, event.partition, event.offset)
