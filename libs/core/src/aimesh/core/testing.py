"""In-memory doubles and helpers for the tests of services built on ``aimesh.core`` (never used at runtime).

- ``RecordingSender``: an ``aimesh.core.bus.EventSender`` (with ``EventProducer.send_raw`` too) that
  records each send and acknowledges it at once, or fails the acknowledgement on demand.
- ``TransactionalRecordingSender``: a ``RecordingSender`` that is also ``aimesh.core.bus.Transactions``:
  sends are staged and only reach ``sent`` when the transaction commits.
- ``FakeKafkaConsumer``: stands in for aiokafka's consumer inside an ``EventConsumer`` (one partition
  served from its position; seeks, commits and polls recorded).
- ``run_until``: runs a real ``EventConsumer`` until a condition holds, then stops it (which commits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka import TopicPartition
from google.protobuf.message import Message

from aimesh.core.bus import EventConsumer


class SentEvent(NamedTuple):
    """One ``send_event`` call that ``RecordingSender`` acknowledged."""

    topic: str
    message: Message
    key: str | bytes | None
    event_id: str | None


class RawSent(NamedTuple):
    """One ``send_raw`` call that ``RecordingSender`` acknowledged."""

    topic: str
    value: bytes
    key: str | bytes | None
    headers: tuple[tuple[str, bytes], ...]


class RecordingSender:
    """Records every acknowledged send in ``sent`` (``send_raw``: in ``raw``), in call order.

    While ``fail`` is true, or for the next ``fail_times`` sends, the acknowledgement future fails with
    ``ConnectionError("broker down")`` instead and nothing is recorded (the call itself never raises).
    """

    def __init__(self, *, fail: bool = False, fail_times: int = 0) -> None:
        self.sent: list[SentEvent] = []
        self.raw: list[RawSent] = []
        self.fail = fail
        self.fail_times = fail_times

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._failing():
            fut.set_exception(ConnectionError("broker down"))
        else:
            self.raw.append(RawSent(topic, value, key, tuple(headers)))
            fut.set_result(None)
        return fut

    def _failing(self) -> bool:
        failing = self.fail or self.fail_times > 0
        self.fail_times = max(self.fail_times - 1, 0)
        return failing

    async def send_event(
        self,
        topic: str,
        message: Message,
        *,
        key: str | bytes | None,
        event_id: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._failing():
            fut.set_exception(ConnectionError("broker down"))
        else:
            self._record(SentEvent(topic, message, key, event_id))
            fut.set_result(None)
        return fut

    def _record(self, sent: SentEvent) -> None:
        self.sent.append(sent)

    def on(self, topic: str) -> list[SentEvent]:
        """The recorded sends to ``topic``."""
        return [s for s in self.sent if s.topic == topic]


class TransactionalRecordingSender(RecordingSender):
    """A ``RecordingSender`` with Kafka-transaction semantics, for ``EventConsumer(transactions=...)``.

    Sends between ``begin()`` and ``commit()`` are staged; ``commit`` moves them to ``sent`` and appends
    the offsets to ``commits``; ``abort`` drops them. A send outside a transaction raises ``RuntimeError``
    (as aiokafka does). ``fail_commits`` makes the next commits raise ``ConnectionError`` (nothing is
    committed then); ``aborts`` counts aborted transactions.
    """

    def __init__(self, *, fail_commits: int = 0) -> None:
        super().__init__()
        self.staged: list[SentEvent] | None = None
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail_commits = fail_commits
        self.aborts = 0

    async def begin(self) -> None:
        if self.staged is not None:
            raise RuntimeError("a transaction is already open")
        self.staged = []

    async def commit(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None:
        if self.staged is None:
            raise RuntimeError("no transaction is open")
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise ConnectionError("broker down")
        self.sent.extend(self.staged)
        self.commits.append(dict(offsets))
        self.staged = None

    async def abort(self, cause: BaseException | None = None) -> None:
        if self.staged is not None:
            self.aborts += 1
        self.staged = None

    def _record(self, sent: SentEvent) -> None:
        if self.staged is None:
            raise RuntimeError("send outside a transaction")
        self.staged.append(sent)


@dataclass
class FakeRecord:
    """The fields of aiokafka's ConsumerRecord that ``EventConsumer`` reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = 0


class FakeKafkaConsumer:
    """aiokafka's consumer reduced to what ``EventConsumer`` uses, serving ``values`` of one partition.

    Install it with ``consumer._consumer = fake``. ``getmany`` returns up to ``batch`` records from
    ``fetch_position`` (and counts the call in ``polls``); ``seek`` moves it and ``position`` answers
    it; ``commit`` records the offsets in ``commits``; the high watermark is the number of records.
    """

    def __init__(self, values: Sequence[bytes], *, batch: int, tp: TopicPartition | None = None) -> None:
        self.tp = tp or TopicPartition("up", 0)
        self.records = [FakeRecord(self.tp.topic, self.tp.partition, i, b"k", v) for i, v in enumerate(values)]
        self.fetch_position = 0
        self.batch = batch
        self.polls = 0
        self.commits: list[dict[TopicPartition, int]] = []
        self.listener: Any = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        self.listener = listener

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[FakeRecord]]:
        await asyncio.sleep(0)
        self.polls += 1
        chunk = self.records[self.fetch_position : self.fetch_position + min(self.batch, max_records)]
        self.fetch_position += len(chunk)
        return {self.tp: chunk} if chunk else {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.fetch_position = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.fetch_position

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.records)

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return None


async def run_until(consumer: EventConsumer, done: Callable[[], bool], within_s: float = 60.0) -> None:
    """Run ``consumer`` until ``done()`` holds, then stop it (it commits) and wait for it to return.

    Raises what ``consumer.run()`` raised if it ended early, and ``TimeoutError`` when ``done()`` still
    does not hold after ``within_s`` seconds (the consumer is stopped either way).
    """
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(within_s):
            while not done():
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await task
