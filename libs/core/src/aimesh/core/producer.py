"""Self-healing Kafka sends: an idempotent producer that is replaced when it can no longer deliver.

aiokafka's idempotent producer cannot recover from a gap in its sequence numbers: after a batch
expired during a broker outage, every later batch of that partition fails with
``OutOfOrderSequenceNumber`` until the process restarts. ``SelfHealingProducer`` owns the aiokafka
producer and keeps every record it was given until Kafka acknowledged it. Contract of ``send``:

- It queues the record and returns a future that resolves to aiokafka's ``RecordMetadata`` once Kafka
  acknowledged the record (``acks=all``), or fails with
  - the record's own permanent error (``is_record_error``: too large, invalid topic, not authorised,
    policy violation), raised by ``send`` itself when aiokafka raises it at once; such a record is
    never re-sent;
  - ``DeliveryTimeout`` when it was not acknowledged within ``delivery_timeout_s`` of the ``send``;
  - ``ProducerClosed`` when ``stop()`` returned before it was acknowledged.
- Any other Kafka error of an acknowledgement or of a send (sequence, fencing and producer-id errors,
  ``IllegalStateError``, expired batches, request timeouts, a dead sender task, a closed producer)
  replaces the aiokafka producer with a fresh one (new producer id, fresh sequence numbers; ``start``
  is retried with backoff while no broker answers), then hands it every record not yet acknowledged
  in the original ``send`` order, so the order of the records of one partition holds. Sends made
  while the replacement runs queue behind those records and never touch the broken producer.
  The callers' futures resolve when the new producer acknowledges their records.
- Cancelling a returned future withdraws its record from later re-sends.
- A re-sent record may be written twice (the broken producer may have written it without us
  learning so): duplicates only, never a loss; consumers dedupe by event id (``ce_id``).
- Safe for any number of concurrent senders on one event loop. Counted in
  ``aimesh_producer_replacements_total`` and ``aimesh_producer_resends_total``.

With ``heal=False`` (transactional producers: a transaction's records cannot move to another
producer) ``send`` passes straight through to aiokafka and ``replace()`` is the only way to a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    ProducerClosed,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)
from prometheus_client import Counter

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 120.0
"""Default time a record may wait for its acknowledgement, re-sends included (the Java client's
``delivery.timeout.ms``)."""
REQUEST_TIMEOUT_MS = 30_000
"""Default aiokafka ``request_timeout_ms``: one produce request's timeout and how long an unsent batch
may wait for a partition leader (the Java client's default; aiokafka's own is 40 s)."""

PRODUCER_REPLACEMENTS = Counter(
    "aimesh_producer_replacements_total", "Kafka producers replaced after a fatal or sequence error", ["source"]
)
PRODUCER_RESENDS = Counter(
    "aimesh_producer_resends_total", "Unacknowledged records handed again to a replacement producer", ["source"]
)

RECORD_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    CorruptRecordException,
    UnsupportedForMessageFormatError,
    InvalidTimestampError,
    PolicyViolationError,
)


class DeliveryTimeout(KafkaTimeoutError):  # type: ignore[misc]
    """A record was not acknowledged within the delivery timeout (it is no longer re-sent)."""


def is_record_error(exc: BaseException) -> bool:
    """True when ``exc`` is about the record itself, so sending it again (anywhere, later) cannot succeed."""
    return isinstance(exc, RECORD_ERRORS)


def heals(exc: BaseException) -> bool:
    """True when a replacement producer may deliver what failed with ``exc``: every Kafka error except the
    record's own (``is_record_error``). Other exceptions (a bad header type) go to the caller as they are."""
    return isinstance(exc, KafkaError) and not is_record_error(exc)


class KafkaSendClient(Protocol):
    """What ``SelfHealingProducer`` needs of ``aiokafka.AIOKafkaProducer`` (unit tests pass fakes)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


@dataclass(eq=False)
class _Record:
    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]
    caller: asyncio.Future[Any]
    generation: int = -1
    """The producer generation it was last handed to (-1: not yet)."""
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class SelfHealingProducer:
    """Sends through a replaceable aiokafka producer built by ``factory`` (see the module doc)."""

    def __init__(
        self,
        factory: Callable[[], KafkaSendClient],
        *,
        name: str,
        heal: bool = True,
        delivery_timeout_s: float = DELIVERY_TIMEOUT_S,
        start_timeout_s: float = 30.0,
        close_timeout_s: float = 10.0,
        restart_backoff_s: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self.name = name
        self._factory = factory
        self._heal = heal
        self._delivery_timeout_s = delivery_timeout_s
        self._start_timeout_s = start_timeout_s
        self._close_timeout_s = close_timeout_s
        self._backoff = restart_backoff_s
        self._client = factory()
        self._generation = 0
        self._records: dict[int, _Record] = {}
        self._seq = itertools.count()
        self._healing: asyncio.Task[None] | None = None
        self._heal_again = False
        self._closing = False
        self._retiring: set[asyncio.Task[None]] = set()
        self.replacements = 0
        """Producers replaced so far."""
        self.resends = 0
        """Records handed again to a replacement producer so far."""
        self._replacements = PRODUCER_REPLACEMENTS.labels(name)
        self._resends = PRODUCER_RESENDS.labels(name)

    @property
    def current(self) -> Any:
        """The aiokafka producer in use now (replaced on fatal errors: do not keep it)."""
        return self._client

    @property
    def unacknowledged(self) -> int:
        """Records given to ``send`` whose futures are not done yet."""
        return len(self._records)

    @property
    def healing(self) -> bool:
        """True while a replacement producer is being started or handed the unacknowledged records."""
        return self._healing is not None

    async def start(self) -> None:
        """Start the first producer; raises aiokafka's error when no broker answers (nothing is retried)."""
        await self._client.start()

    async def stop(self) -> None:
        """Stop healing, flush and close the producer in use, then fail what is still unacknowledged.

        Waits up to ``close_timeout_s`` for producers retired by a replacement to close.
        """
        self._closing = True
        if self._healing is not None:
            self._healing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._healing
        try:
            await self._client.stop()
        finally:
            if self._retiring:
                await asyncio.wait(set(self._retiring), timeout=self._close_timeout_s)
            for record in list(self._records.values()):
                if not record.caller.done():
                    record.caller.set_exception(ProducerClosed())

    async def replace(self) -> None:
        """Replace the producer now (``heal=False`` users: e.g. after a failed transaction abort).

        Retires the old one (closed in the background) and starts a new one; raises when it cannot start.
        """
        old = self._client
        self._generation += 1
        self._client = self._factory()
        self._retire(old)
        await self._client.start()
        self.replacements += 1
        self._replacements.inc()

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        """Queue one record; see the module doc for what the returned future resolves to."""
        if not self._heal:
            fut: asyncio.Future[Any] = await self._client.send(topic, value, key=key, headers=headers)
            return fut
        if self._closing:
            raise ProducerClosed()
        loop = asyncio.get_running_loop()
        seq = next(self._seq)
        record = _Record(topic, value, key, headers, loop.create_future())
        self._records[seq] = record
        record.timer = loop.call_later(self._delivery_timeout_s, self._expire, seq)
        record.caller.add_done_callback(functools.partial(self._forget, seq))
        if self._healing is None:
            error = await self._hand(record)
            if error is not None:
                record.caller.cancel()
                raise error
        return record.caller

    def _forget(self, seq: int, _: asyncio.Future[Any]) -> None:
        record = self._records.pop(seq, None)
        if record is not None and record.timer is not None:
            record.timer.cancel()

    def _expire(self, seq: int) -> None:
        record = self._records.get(seq)
        if record is not None and not record.caller.done():
            record.caller.set_exception(
                DeliveryTimeout(f"not acknowledged within {self._delivery_timeout_s:g}s (to {record.topic})")
            )

    async def _hand(self, record: _Record) -> BaseException | None:
        """Give ``record`` to the current producer; returns its permanent error, if aiokafka raised one."""
        generation = self._generation
        record.generation = generation
        try:
            ack = await self._client.send(record.topic, record.value, key=record.key, headers=record.headers)
        except Exception as exc:
            if not heals(exc):
                return exc
            self._failed(record, generation, exc)
            return None
        ack.add_done_callback(functools.partial(self._acknowledged, record, generation))
        return None

    def _acknowledged(self, record: _Record, generation: int, ack: asyncio.Future[Any]) -> None:
        if ack.cancelled():
            self._failed(record, generation, ProducerClosed())
            return
        exc = ack.exception()
        if exc is None:
            if not record.caller.done():
                record.caller.set_result(ack.result())
            return
        self._failed(record, generation, exc)

    def _failed(self, record: _Record, generation: int, exc: BaseException) -> None:
        if not heals(exc):
            if record.generation == generation and not record.caller.done():
                record.caller.set_exception(exc)
            return
        if generation != self._generation or self._closing:
            return  # a retired producer's failure: the record was (or will be) handed to its successor
        if self._healing is not None:
            self._heal_again = True  # the replacement itself broke: replace it too
            return
        log.warning(
            "Kafka producer failed; replacing it and re-sending %d unacknowledged records: %r",
            len(self._records),
            exc,
            extra={"producer.source": self.name},
        )
        self._healing = asyncio.create_task(self._heal_loop(), name=f"producer-heal:{self.name}")

    async def _heal_loop(self) -> None:
        try:
            while True:
                self._heal_again = False
                await self._replace_and_resend()
                if not self._heal_again:
                    return
        finally:
            self._healing = None

    async def _replace_and_resend(self) -> None:
        old = self._client
        self._generation += 1
        generation = self._generation
        self._retire(old)
        self._client = await self._start_new()
        self.replacements += 1
        self._replacements.inc()
        handed = 0
        while todo := [r for r in self._records.values() if r.generation != generation]:
            for record in todo:
                if record.caller.done() or record.generation == generation:
                    continue
                if record.generation >= 0:
                    self.resends += 1
                    self._resends.inc()
                error = await self._hand(record)
                if error is not None and not record.caller.done():
                    record.caller.set_exception(error)
                handed += 1
                if self._heal_again:
                    return
        log.info(
            "Kafka producer replaced; %d records handed to it",
            handed,
            extra={"producer.source": self.name, "producer.replacements": self.replacements},
        )

    async def _start_new(self) -> KafkaSendClient:
        delay, max_delay = self._backoff
        while True:
            client = self._factory()
            try:
                await asyncio.wait_for(client.start(), timeout=self._start_timeout_s)
                return client
            except Exception as exc:
                self._retire(client)
                log.warning(
                    "replacement Kafka producer did not start, retrying in %.1fs: %r",
                    delay,
                    exc,
                    extra={"producer.source": self.name},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)

    def _retire(self, client: KafkaSendClient) -> None:
        """Close ``client`` in the background (its flush may wait for a broker that is away)."""

        async def close() -> None:
            try:
                await client.stop()
            except Exception as exc:
                log.debug("closing a retired Kafka producer failed: %r", exc)

        task = asyncio.create_task(close(), name=f"producer-retire:{self.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
