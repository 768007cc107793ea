"""Backfill: initialise a feature view's online state from the lake, with bounded memory.

The lake is scanned in record batches (``lake.scan``, ``batch_rows`` rows at a time, only the
columns the view reads); each batch is projected onto the view and written in one transaction,
pruned per entity to the view's retention as it goes. Memory is one batch and the Parquet row group
it comes from, whatever the lake's size.

No gap, no overlap with the stream: the view is registered BEFORE the backfill starts, so the online
update applies every record it consumes from then on to the view. Every record it consumed before is
already in the lake, because ingest makes a batch's lake files durable before it commits the Kafka
transaction that makes the records visible to ``read_committed`` consumers (aimesh.ingest.pipeline).
Records both backfilled and streamed are written twice by event id, which the store makes idempotent
(payloads overwritten with the same values, first-seen times as a min), so the overlap counts once.
The lateness rule is not applied to backfilled events (the stream applies it to later ones).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aimesh.core.events import PoisonEvent
from aimesh.feature import metrics
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.store import DefinitionStore
from aimesh.feature.offline.lake import needed_columns, scan
from aimesh.feature.online.protocol import OnlineStateStore
from aimesh.feature.records import ViewEvent, view_event

logger = logging.getLogger(__name__)
BACKFILL_BATCH_ROWS = 20_000


@dataclass(frozen=True)
class BackfillResult:
    """Rows read from the lake, events written, rows without the view's entity id (skipped)."""

    view: str
    rows: int
    written: int
    skipped: int


async def backfill_view(
    registry: Registry,
    view_name: str,
    store: OnlineStateStore,
    definitions: DefinitionStore,
    lake_root: Path,
    *,
    batch_rows: int = BACKFILL_BATCH_ROWS,
    on_progress: Callable[[int], None] | None = None,
) -> BackfillResult:
    """Backfill ``view_name`` from the lake, then record it as done for the view's current layout.

    Raises NotFound for an unknown view, SQLAlchemy / OSError when the database or the lake fails
    (what was written stays: re-running is idempotent).
    """
    view = registry.view(view_name)
    entity = registry.entities[view.entity]
    retention = {view.name: view.retention_us}
    batches = scan(lake_root, view.source, needed_columns([view], registry), batch_size=batch_rows)
    rows = written = skipped = 0
    while (batch := await asyncio.to_thread(next, batches, None)) is not None:
        events: list[ViewEvent] = []
        for record in batch:
            try:
                events.append(view_event(view, entity, record))
            except PoisonEvent:
                skipped += 1
        await store.write_backfill(events, retention)
        rows += len(batch)
        written += len(events)
        metrics.BACKFILL_ROWS.labels(view.name).inc(len(batch))
        if on_progress is not None:
            on_progress(rows)
    await definitions.record_backfill(view, rows)
    logger.info("backfilled feature view %s: %d lake rows, %d events", view.name, rows, written)
    return BackfillResult(view.name, rows, written, skipped)
