"""Transactional outbox: events are stored in the same transaction as the change they announce, and
published to Kafka after the commit.

``enqueue`` adds an event inside the caller's transaction (a repeated ``event_id`` is ignored).
``OutboxRelay.flush`` publishes every pending event in insertion order, marking each published only
after Kafka acknowledged it; a crash between the two re-publishes it (consumers dedupe on ``ce_id``,
which is the stable ``event_id``). ``OutboxRelay.run`` retries pending events periodically, so an
outage of Kafka delays events but never loses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf.message import Message
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aimesh.core.events import cloudevent_headers
from aimesh.core.sql import insert_ignoring_duplicates
from aimesh.training.schema import outbox

log = logging.getLogger(__name__)


class RawPublisher(Protocol):
    """The part of ``aimesh.core.bus.EventProducer`` the relay uses."""

    source: str

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


async def enqueue(conn: AsyncConnection, *, topic: str, key: str, message: Message, event_id: str) -> None:
    """Store ``message`` for publication on ``topic`` within ``conn``'s transaction (idempotent per event_id)."""
    await insert_ignoring_duplicates(
        conn,
        outbox,
        [
            {
                "event_id": event_id,
                "topic": topic,
                "key": key,
                "event_type": message.DESCRIPTOR.full_name,
                "payload": message.SerializeToString(),
                "create_time": datetime.now(UTC),
                "published_time": None,
            }
        ],
    )


class OutboxRelay:
    """Publishes pending outbox events (see module doc). One flush runs at a time."""

    def __init__(self, engine: AsyncEngine, publisher: RawPublisher, *, interval_s: float = 5.0) -> None:
        self._engine = engine
        self._publisher = publisher
        self._interval_s = interval_s
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask ``run`` to flush now instead of at the next interval (after a commit that enqueued events)."""
        self._wake.set()

    async def flush(self, batch: int = 500) -> int:
        """Publish pending events, oldest first; returns how many. Raises when Kafka fails (they stay pending)."""
        published = 0
        async with self._lock:
            while True:
                async with self._engine.connect() as conn:
                    rows = (
                        await conn.execute(
                            select(outbox).where(outbox.c.published_time.is_(None)).order_by(outbox.c.id).limit(batch)
                        )
                    ).all()
                if not rows:
                    return published
                for row in rows:
                    headers = cloudevent_headers(
                        event_type=row.event_type, source=self._publisher.source, event_id=row.event_id
                    )
                    ack = await self._publisher.send_raw(row.topic, row.payload, key=row.key, headers=headers)
                    await ack
                    async with self._engine.begin() as conn:
                        await conn.execute(
                            update(outbox).where(outbox.c.id == row.id).values(published_time=datetime.now(UTC))
                        )
                    published += 1

    async def flush_quietly(self) -> None:
        """``flush`` that logs instead of raising: the periodic retry will publish what is left."""
        try:
            await self.flush()
        except Exception as exc:
            log.warning("publishing outbox events failed; will retry: %s", exc)

    async def run(self) -> None:
        """Flush on ``wake()`` or every ``interval_s`` until ``stop()``; a final flush on the way out."""
        while not self._stopping.is_set():
            self._wake.clear()
            await self.flush_quietly()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)
        await self.flush_quietly()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
