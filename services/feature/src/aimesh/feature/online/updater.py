"""The online update: the batch handler that applies canonical records to the online store.

Transport-free: it gets one partition's batch of events (``aimesh.core.bus`` batch hook). Per batch:
records at offsets the store already applied are skipped; the others are decoded and projected onto
every feature view of their source (the registry current at that moment); undecodable ones, and ones
without a view's entity id, are dead-lettered (acknowledged) before the effects are written; then the
view events and the partition's next offset are committed in one database transaction. Kafka's own
offset commit comes after the handler returns and only saves redelivery work: the stored offset is
what guarantees that nothing is counted twice.

Each record is traced by a CONSUMER span ``feature update <topic>`` continuing the record's trace (the
upstream event's, carried on by ingest); it ends when the batch is committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from aimesh.core.bus import DeadLetterSink, dead_letter
from aimesh.core.events import Event, PoisonEvent
from aimesh.core.tracing import record_spans, tracer
from aimesh.feature import metrics
from aimesh.feature.definitions.registry import Registry, RegistryHolder
from aimesh.feature.online.protocol import ApplyResult, OnlineStateStore
from aimesh.feature.records import ViewEvent, record_from_event, view_event

_tracer = tracer(__name__)


class OnlineUpdater:
    """Applies consumed canonical records to ``store`` for the views of ``registry``; rejects go to ``dead_letters``."""

    def __init__(
        self,
        store: OnlineStateStore,
        dead_letters: DeadLetterSink | None,
        registry: RegistryHolder,
        *,
        service: str = "feature",
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.registry = registry
        self.service = service

    async def __call__(self, events: Sequence[Event]) -> None:
        """Apply one partition batch (offsets ascending). Returns once the effects are committed.

        Raises when the database or the dead-letter topic fails; the bus then retries the whole batch,
        which the stored offset makes harmless.
        """
        await self.apply(events)

    async def apply(self, events: Sequence[Event]) -> ApplyResult:
        if not events:
            return ApplyResult(0, 0)
        registry = self.registry.current
        topic, partition = events[0].topic, events[0].partition
        with record_spans(_tracer, f"feature update {topic}", events) as spans:
            stored = await self.store.next_offset(topic, partition)
            records: list[tuple[int, Sequence[ViewEvent] | None]] = []
            for event, span in zip(events, spans, strict=True):
                projected = await self._project(event, registry) if event.offset >= stored else None
                span.set_attribute("aimesh.feature.views", [v.view for v in projected or ()])
                records.append((event.offset, projected))
            retention = {v.name: v.retention_us for v in registry.views.values()}
            result = await self.store.apply(topic, partition, records, retention)
        metrics.RECORDS_APPLIED.labels(topic).inc(result.applied)
        metrics.RECORDS_SKIPPED_REDELIVERED.labels(topic).inc(result.skipped)
        metrics.EVENTS_LATE.labels(topic).inc(result.late)
        return result

    async def _project(self, event: Event, registry: Registry) -> list[ViewEvent] | None:
        try:
            record = record_from_event(event)
            views = registry.views_by_source.get(record.source, ())
            projected = [view_event(v, registry.entities[v.entity], record) for v in views]
        except PoisonEvent as poison:
            await dead_letter(self.dead_letters, event, poison, service=self.service)
            return None
        if not projected:
            metrics.RECORDS_IGNORED.labels(event.topic).inc()
            return None
        return projected
