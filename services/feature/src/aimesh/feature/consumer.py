"""The online update: the batch handler that applies ``aimesh.ingest.records.v1`` to the online store.

Transport-free: it gets one partition's batch of events (``aimesh.core.bus`` batch hook). Per batch:
records at offsets the store already applied are skipped; the others are decoded; undecodable ones
are dead-lettered (acknowledged) before the effects are written; then the card transactions and the
partition's next offset are committed in one database transaction. Kafka's own offset commit comes
after the handler returns and only saves redelivery work: the stored offset is what guarantees that
nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from aimesh.core.bus import DeadLetterSink, dead_letter
from aimesh.core.events import Event, PoisonEvent
from aimesh.feature import metrics
from aimesh.feature.records import Transaction, transaction_from_event
from aimesh.feature.store import ApplyResult, OnlineStore


class OnlineUpdater:
    """Applies consumed canonical records to ``store``; rejects go to ``dead_letters``."""

    def __init__(self, store: OnlineStore, dead_letters: DeadLetterSink | None, *, service: str = "feature") -> None:
        self.store = store
        self.dead_letters = dead_letters
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
        topic, partition = events[0].topic, events[0].partition
        stored = await self.store.next_offset(topic, partition)
        records: list[tuple[int, Transaction | None]] = []
        for event in events:
            txn = None
            if event.offset >= stored:
                txn = await self._decode(event)
            records.append((event.offset, txn))
        result = await self.store.apply(topic, partition, records)
        metrics.RECORDS_APPLIED.labels(topic).inc(result.applied)
        metrics.RECORDS_SKIPPED_REDELIVERED.labels(topic).inc(result.skipped)
        return result

    async def _decode(self, event: Event) -> Transaction | None:
        try:
            txn = transaction_from_event(event)
        except PoisonEvent as poison:
            await dead_letter(self.dead_letters, event, poison, service=self.service)
            return None
        if txn is None:
            metrics.RECORDS_IGNORED.labels(event.topic).inc()
        return txn
