"""A bounded read of a whole topic: every committed record from a time (or the beginning) up to where
the topic ended when the scan started. For operator tools (DLQ replay, audits), not for services.

No consumer group and no committed offsets: a scan changes nothing on the broker, so running it twice
reads the same records twice (tools that re-publish must be idempotent, e.g. by keeping event ids).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from aimesh.core.events import Event


class TopicScan:
    """``async with TopicScan(bootstrap, topic, since_ms=...) as scan: async for event in scan: ...``

    Reads with ``isolation_level=read_committed`` (aborted transactions are skipped). ``total`` is known
    after entering: the number of offsets to go through (an upper bound of the records yielded, as
    transaction markers take offsets too). Iteration raises ``TimeoutError`` when no progress is made
    for ``idle_timeout_s``; entering raises aiokafka's ``KafkaError`` when Kafka does not answer. A topic
    that does not exist scans as empty.
    """

    def __init__(
        self, bootstrap: str, topic: str, *, since_ms: int | None = None, idle_timeout_s: float = 30.0, **options: Any
    ) -> None:
        self.topic = topic
        self.total = 0
        self._since_ms = since_ms
        self._idle_timeout_s = idle_timeout_s
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="aimesh-scan",
            **options,
        )
        self._end: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> TopicScan:
        try:
            await self._consumer.start()
            await self._position()
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def _position(self) -> None:
        # A fresh copy: the consumer's cached metadata covers only the topics it was assigned already.
        cluster = await self._consumer._client.fetch_all_metadata()
        numbers = cluster.partitions_for_topic(self.topic)
        if not numbers:
            return
        partitions = [TopicPartition(self.topic, p) for p in sorted(numbers)]
        self._consumer.assign(partitions)
        self._end = await self._consumer.end_offsets(partitions)
        starts = await self._consumer.beginning_offsets(partitions)
        if self._since_ms is not None:
            found = await self._consumer.offsets_for_times({tp: self._since_ms for tp in partitions})
            starts = {tp: self._end[tp] if hit is None else hit.offset for tp, hit in found.items()}
        for tp in partitions:
            self._consumer.seek(tp, starts[tp])
        self.total = sum(max(self._end[tp] - starts[tp], 0) for tp in partitions)

    async def _remaining(self) -> list[TopicPartition]:
        return [tp for tp, end in self._end.items() if await self._consumer.position(tp) < end]

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        last_progress = time.monotonic()
        while remaining := await self._remaining():
            batch = await self._consumer.getmany(*remaining, timeout_ms=500, max_records=500)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self._idle_timeout_s:
                raise TimeoutError(f"scan of {self.topic} made no progress for {self._idle_timeout_s}s")
            for tp, records in batch.items():
                for r in records:
                    if r.offset < self._end[tp]:
                        yield Event.from_record(r)
