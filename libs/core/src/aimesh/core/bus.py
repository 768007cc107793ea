"""The Kafka event bus over aiokafka: an acknowledged producer and an at-least-once consumer.

Delivery contract:

- ``EventProducer.publish`` returns only after every in-sync replica has the record (``acks=all``,
  idempotent producer, so a retried send is never written twice). Its sends go through
  ``aimesh.core.producer.SelfHealingProducer``: a producer that hits a fatal or sequence error is
  replaced and the unacknowledged records are re-sent in order (see that module for the contract).
- ``EventConsumer`` calls the handler for each record in partition order and commits a partition's
  offset only after the handler returned for every record before it, so a crash redelivers but
  never skips. Handlers must therefore be idempotent (key effects by ``Event.id`` or by
  topic/partition/offset stored with the effect).
- A failed record is classified by ``aimesh.core.failures`` (the consumer's ``classifier``):
  transient (a dependency unavailable: broker, database, Elasticsearch, timeouts) is retried with
  backoff for as long as it takes, never skipped: the partition is rewound to the record and nothing
  after it is committed; permanent for the record (``PoisonEvent``, a decode error, too large) is
  dead-lettered at once (``dead_letters``: original bytes, headers and the reason, acknowledged) and
  the partition moves on; unclassified is retried with backoff and, on its ``max_attempts``-th
  failure, dead-lettered as ``RETRIES_EXHAUSTED`` with the last error. Attempts are counted by
  topic/partition/offset, so the count survives the rewind. A dead letter that cannot be sent keeps
  the record in place (retried later), so no record is ever skipped without one.
- A ``batch_handler`` (instead of ``handler``) gets each polled batch of one partition at once, in
  offset order, and may dead-letter rejects itself. When it returns, the partition's offset is
  committed past the batch. When it raises a transient error the partition is rewound to the batch's
  first record and the batch retried with backoff; any other error splits the batch in halves handled
  apart (each committed when it succeeds), down to the failing record, which is then treated as above;
  the next poll's batch starting at a record that failed before hands that record over alone first.
- With ``transactions`` (a ``TransactionalProducer``, and a ``batch_handler`` that sends through it),
  each handled (sub-)batch runs in one Kafka transaction: begin, the handler's sends, the next offset
  added with ``send_offsets_to_transaction``, commit; a dead letter the consumer writes runs in one
  transaction with its record's offset, so with a sink that sends through the same producer it
  commits with the offset and is never lost (a sink over another producer has acknowledged it before
  the offset commits). The consumer then never commits offsets itself. When the handler or the commit
  raises, the transaction is aborted (its records are never visible to ``read_committed`` readers)
  and the failure handled as above. A rebalance waits for the transaction in hand to end (commit or
  abort) before the partitions are revoked, and batches polled before a rebalance are dropped (the
  new assignment starts again from the committed offsets).
- After every poll the consumer sets ``aimesh_consumer_lag`` for every assigned partition whose
  position it knows (offsets between the first unsettled offset and the partition's last stable
  offset, or its high watermark; with nothing in hand the first unsettled offset is the fetch
  position, which is past transaction markers and aborted records, so those never count as records
  to process), again after each settled (sub-)batch;
  ``aimesh_consumer_partition_stalled_seconds`` is computed at scrape time (seconds since the
  position last advanced while records wait), ``aimesh_consumer_retry_attempts`` and
  ``aimesh_consumer_waiting_on_dependency`` describe the record a partition waits to retry.
  ``wedged()`` is the liveness signal (see its doc).
- With ``topics_provider`` (instead of a fixed ``topics`` list) the subscription follows what the
  provider returns: it is asked before every poll, and when its set differs from the subscribed one
  the consumer subscribes again (aiokafka's ``subscribe`` replaces the subscription and the group
  rebalances). That happens only between polls, after the previous poll's offsets were committed and
  with no transaction open, so the revocation it causes has nothing in hand; partitions of a topic the
  group never committed start at ``auto_offset_reset`` (earliest by default). While the set is empty
  the consumer holds no subscription and only keeps its liveness signal moving.
- When one of aiokafka's own background tasks (fetching, group coordination) has ended, which aiokafka
  does silently on a stray cancellation (aio-libs/aiokafka#983) and which would leave the consumer
  fetching nothing forever, the consumer commits what it handled and replaces its aiokafka consumer
  with a new one of the same options (``replacements``, ``aimesh_consumer_replacements_total``); the new
  assignment starts at the committed offsets.
- ``stop()`` (SIGTERM) lets the batch in hand finish, commits, and leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from google.protobuf.message import Message

from aimesh.core import metrics
from aimesh.core.events import Event, PoisonEvent, event_record
from aimesh.core.failures import DEFAULT_CLASSIFIER, RETRIES_EXHAUSTED, ErrorClassifier, Failure, FailureKind
from aimesh.core.producer import DELIVERY_TIMEOUT_S, REQUEST_TIMEOUT_MS, SelfHealingProducer

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
TRANSACTION_TIMEOUT_MS = 30_000
"""Default transaction timeout: the broker aborts a transaction left open longer (a replica that vanished
mid-batch), so ``read_committed`` readers of its output are held back at most this long."""
REPLACED_STOP_TIMEOUT_S = 30.0
"""How long a replaced aiokafka consumer may take to leave the group and close before it is abandoned."""
MAX_BATCH_BYTES = 512 * 1024
"""The producer's batch size per partition (aiokafka's default is 16 KiB). A send into a full batch waits
for that batch to drain, and every waiting send wakes at each drain: with thousands of small events in
flight (inference's Predictions under ScoreBatch) the default made delivery, not scoring, the bottleneck.
Larger batches need less waiting; ``linger_ms`` still bounds how long a record waits to be sent."""
TOPIC_DISCOVERY_MS = 5000
"""How often a consumer refreshes cluster metadata: a subscribed topic created after the consumer started
(e.g. by the first producer) is picked up within this time, from its earliest offset."""
BatchHandler = Callable[[Sequence[Event]], Awaitable[object]]
"""Handles one partition's batch (same topic and partition, offsets ascending; the result is ignored)."""
TopicsProvider = Callable[[], Iterable[str]]
"""The topics a consumer should read now; called before every poll, so it must be cheap and not block."""
DEFAULT_MAX_ATTEMPTS = 5
"""Attempts of a record failing with an unclassified error before the consumer dead-letters it."""


class DeadLetterSink(Protocol):
    """Where the consumer puts records it can never handle. ``send`` returns once the record is durable."""

    async def send(self, event: Event, reason_code: str, message: str) -> None: ...


class EventSender(Protocol):
    """What publishers need of ``EventProducer``: queue one event, get its acknowledgement future.

    Code that only sends (pipelines, the log shipper, the prediction publisher) takes this instead of
    ``EventProducer`` so its unit tests can pass ``aimesh.core.testing.RecordingSender``.
    """

    async def send_event(
        self,
        topic: str,
        message: Message,
        *,
        key: str | bytes | None,
        event_id: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[Any]: ...


async def dead_letter(sink: DeadLetterSink | None, event: Event, poison: PoisonEvent, *, service: str) -> None:
    """Put ``event`` on ``sink`` with the poison's reason, count it and log it; returns once it is durable.

    Raises ``RuntimeError`` (caused by ``poison``) when there is no sink, and whatever ``sink.send`` raises.
    """
    if sink is None:
        raise RuntimeError(f"no dead-letter sink configured for poison event {event.id}") from poison
    await sink.send(event, poison.reason_code, poison.message)
    metrics.EVENTS_DEAD_LETTERED.labels(service, event.topic, poison.reason_code).inc()
    log.warning(
        "event dead-lettered", extra={"event.id": event.id, "reason": poison.reason_code, "detail": poison.message}
    )


class Transactions(Protocol):
    """The Kafka transactions ``EventConsumer`` drives around a batch (``TransactionalProducer``)."""

    async def begin(self) -> None: ...

    async def commit(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None: ...

    async def abort(self, cause: BaseException | None = None) -> None: ...


@functools.lru_cache(maxsize=65536)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's ``DefaultPartitioner`` (the Java client's murmur2 placement, so keyed records land where
    any Kafka client puts them) with the hashes of recently seen keys cached: the pure-Python murmur2
    costs microseconds per record, and entity keys repeat."""
    if key is None:
        return int(DefaultPartitioner()(key, all_partitions, available))
    return all_partitions[_key_hash(key) % len(all_partitions)]


class EventProducer:
    """Publishes protobuf events with CloudEvents headers; ``acks=all`` with idempotence.

    Non-transactional sends heal themselves (``SelfHealingProducer``): an acknowledgement future fails
    only with the record's own error, ``DeliveryTimeout`` after ``delivery_timeout_s``, or
    ``ProducerClosed`` after ``stop()``.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        source: str,
        linger_ms: int = 5,
        delivery_timeout_s: float = DELIVERY_TIMEOUT_S,
        **kafka_options: Any,
    ) -> None:
        self.source = source
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "client_id": f"aimesh-{source}",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "max_batch_size": MAX_BATCH_BYTES,
            "partitioner": key_partitioner,
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
            **kafka_options,
        }
        self._kafka = SelfHealingProducer(
            lambda: AIOKafkaProducer(**self._options),
            name=source,
            heal="transactional_id" not in self._options,
            delivery_timeout_s=delivery_timeout_s,
        )
        self._published: dict[str, Callable[[asyncio.Future[Any]], None]] = {}

    @property
    def _producer(self) -> Any:
        """The aiokafka producer in use now (a replacement after a fatal error)."""
        return self._kafka.current

    @property
    def healer(self) -> SelfHealingProducer:
        """The self-healing layer (its ``replacements`` and ``resends`` counts)."""
        return self._kafka

    async def start(self) -> None:
        """Connect; raises aiokafka's KafkaConnectionError when no broker answers."""
        await self._kafka.start()

    async def stop(self) -> None:
        """Flush what is pending, then close; records still unacknowledged fail with ``ProducerClosed``."""
        await self._kafka.stop()

    async def check_connected(self) -> None:
        """Readiness check: fetch cluster metadata; raises when no broker answers."""
        await self._producer.client.fetch_all_metadata()

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        """Queue one record; the returned future resolves (to RecordMetadata) when Kafka acknowledged it.

        Use it to pipeline many sends and await them together; ``publish`` awaits a single one.
        """
        key_bytes = key.encode() if isinstance(key, str) else key
        return await self._kafka.send(topic, value, key=key_bytes, headers=list(headers))

    async def publish(
        self,
        topic: str,
        message: Message,
        *,
        key: str | bytes | None,
        event_id: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> Any:
        """Publish ``message`` and wait for the acknowledgement; returns aiokafka's RecordMetadata."""
        fut = await self.send_event(topic, message, key=key, event_id=event_id, extra_headers=extra_headers)
        return await fut

    async def send_event(
        self,
        topic: str,
        message: Message,
        *,
        key: str | bytes | None,
        event_id: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[Any]:
        """Like ``publish`` but returns the acknowledgement future instead of awaiting it."""
        value, headers = event_record(message, source=self.source, event_id=event_id, extra=extra_headers)
        fut = await self.send_raw(topic, value, key=key, headers=headers)
        fut.add_done_callback(self._published.get(topic) or self._count_published(topic))
        return fut

    def _count_published(self, topic: str) -> Callable[[asyncio.Future[Any]], None]:
        """The done-callback that counts an acknowledged send to ``topic`` (one per topic, reused)."""
        counter = metrics.EVENTS_PUBLISHED.labels(self.source, topic)

        def count(fut: asyncio.Future[Any]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                counter.inc()

        self._published[topic] = count
        return count


class TransactionalProducer(EventProducer):
    """An ``EventProducer`` whose sends belong to Kafka transactions (``transactional_id``).

    Sends are only allowed between ``begin()`` and ``commit()``/``abort()``; ``EventConsumer`` drives
    them when given this producer as ``transactions``. Starting it registers ``transactional_id`` with
    the broker, which fences an older producer with the same id (a zombie of the same replica) and
    aborts its open transaction at once; keep the id stable per replica and unique across replicas.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        source: str,
        transactional_id: str,
        transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS,
        linger_ms: int = 5,
        **kafka_options: Any,
    ) -> None:
        super().__init__(
            bootstrap,
            source=source,
            linger_ms=linger_ms,
            transactional_id=transactional_id,
            transaction_timeout_ms=transaction_timeout_ms,
            **kafka_options,
        )
        self.transactional_id = transactional_id
        self._open = False
        self._broken = False

    async def begin(self) -> None:
        """Open a transaction. Raises when Kafka is unreachable or the producer cannot be re-initialised."""
        if self._broken:
            await self._restart()
        await self._producer.begin_transaction()
        self._open = True

    async def commit(self, offsets: Mapping[TopicPartition, int], group_id: str) -> None:
        """Add ``offsets`` (next offset per partition) of ``group_id`` and commit; blocks until Kafka decided.

        Raises when the transaction could not be committed (then nothing of it is visible): call ``abort()``.
        """
        await self._producer.send_offsets_to_transaction(dict(offsets), group_id)
        await self._producer.commit_transaction()
        self._open = False

    async def abort(self, cause: BaseException | None = None) -> None:
        """Abort the open transaction, if any; never raises.

        The producer is marked broken, and the next ``begin()`` replaces it with a new one of the same
        ``transactional_id`` (which makes the broker abort whatever the old one left open), when it cannot
        abort (fenced, timed out by the broker, Kafka gone) or when ``cause``, the error that ended the
        transaction, came from Kafka or timed out: after such an error aiokafka's transaction state may
        no longer match the coordinator's, and reusing the producer could fail every later transaction.
        """
        if cause is not None and isinstance(cause, KafkaError | TimeoutError):
            if not self._broken:
                log.warning("transaction failed in Kafka; the producer will be re-initialised: %r", cause)
            self._broken = True
        if not self._open:
            return
        self._open = False
        try:
            await self._producer.abort_transaction()
        except Exception as exc:
            log.warning("transaction abort failed; the producer will be re-initialised: %r", exc)
            self._broken = True

    async def _restart(self) -> None:
        await self._kafka.replace()
        self._broken = False
        log.info("transactional producer re-initialised", extra={"transactional_id": self.transactional_id})


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move to another member: waits for the batch in hand, commits what was handled."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._consumer._on_revoke()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": [f"{tp.topic}/{tp.partition}" for tp in assigned]})


@dataclass(slots=True)
class RetryState:
    """The record a partition waits to retry: its offset, its failed attempts and the last error."""

    offset: int
    attempts: int
    kind: FailureKind
    error: str
    at: float
    """Monotonic time the last attempt failed."""


@dataclass(slots=True)
class PartitionState:
    """What the consumer knows of one assigned partition (read by the metrics and the liveness check)."""

    advanced_at: float
    """Monotonic time the position last advanced (a record settled) or the partition was seen caught up."""
    next_offset: int | None = None
    """The first offset not settled yet (neither handled nor dead-lettered); None before the first record."""
    end_offset: int | None = None
    """The last stable offset (or the high watermark) at the last poll."""

    @property
    def lag(self) -> int | None:
        if self.next_offset is None or self.end_offset is None:
            return None
        return max(self.end_offset - self.next_offset, 0)

    def stalled_seconds(self, now: float) -> float:
        """Seconds since the position last advanced while records wait (0 when caught up or unknown)."""
        lag = self.lag
        return max(now - self.advanced_at, 0.0) if lag else 0.0


class _Rebalanced:
    """Marker: the batch was polled before a rebalance; the new assignment restarts at the committed offsets."""


_REBALANCED = _Rebalanced()


class EventConsumer:
    """Runs ``handler`` for every record of ``topics`` in consumer group ``group_id`` (see module doc)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        group_id: str,
        topics: Sequence[str] = (),
        topics_provider: TopicsProvider | None = None,
        handler: Handler | None = None,
        service: str,
        batch_handler: BatchHandler | None = None,
        dead_letters: DeadLetterSink | None = None,
        transactions: Transactions | None = None,
        classifier: ErrorClassifier = DEFAULT_CLASSIFIER,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_batch: int = 500,
        poll_timeout_ms: int = 500,
        retry_backoff_s: float = 0.5,
        max_retry_backoff_s: float = 5.0,
        auto_offset_reset: str = "earliest",
        **kafka_options: Any,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        if transactions is not None and batch_handler is None:
            raise ValueError("transactions need a batch_handler")
        if topics and topics_provider is not None:
            raise ValueError("give topics or topics_provider, not both")
        self._static_topics = frozenset(topics)
        self._topics_provider = topics_provider
        self._subscribed: frozenset[str] = frozenset()
        self._listener = _CommitOnRevoke(self)
        self.service = service
        self._handler = handler
        self._batch_handler = batch_handler
        self._dead_letters = dead_letters
        self._transactions = transactions
        self.classifier = classifier
        self.max_attempts = max_attempts
        """Attempts of a record failing with an unclassified error before it is dead-lettered (at least 1)."""
        self._group_id = group_id
        self._max_batch = max_batch
        self._poll_timeout_ms = poll_timeout_ms
        self.retry_backoff_s = retry_backoff_s
        self.max_retry_backoff_s = max_retry_backoff_s
        self._consumer_options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "client_id": f"aimesh-{service}",
            "enable_auto_commit": False,
            "auto_offset_reset": auto_offset_reset,
            "isolation_level": "read_committed",
            "metadata_max_age_ms": TOPIC_DISCOVERY_MS,
            **kafka_options,
        }
        self._consumer = AIOKafkaConsumer(**self._consumer_options)
        self.replacements = 0
        """How often the aiokafka consumer was replaced because one of its own tasks had ended."""
        self._pending: dict[TopicPartition, int] = {}
        self._commit_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._running = False
        self._failures = 0
        self._rebalances = 0
        self._polled_in = 0
        self._partitions: dict[TopicPartition, PartitionState] = {}
        self._retries: dict[TopicPartition, RetryState] = {}
        self._step: tuple[str, float] | None = None
        self.last_poll = time.monotonic()
        """Monotonic time of the last completed poll."""

    @property
    def topics(self) -> list[str]:
        """The topics to read now (sorted): the fixed list, or what ``topics_provider`` returns."""
        return sorted(self._wanted_topics())

    @property
    def partitions(self) -> Mapping[TopicPartition, PartitionState]:
        """The assigned partitions' state as of the last poll or settled record (read-only use)."""
        return self._partitions

    @property
    def retries(self) -> Mapping[TopicPartition, RetryState]:
        """The partitions waiting to retry a record, with its attempts and last error (read-only use)."""
        return self._retries

    def stop(self) -> None:
        """Ask ``run`` to finish the batch in hand, commit and return. Safe to call from a signal handler."""
        self._stopping.set()

    def wedged(self, max_stall_s: float, now: float | None = None) -> str | None:
        """Why the consumer is wedged, or None while it moves (the liveness signal; never blocks).

        Wedged means: one step of the loop (a poll, one handler or dead-letter attempt, an offset commit)
        has not returned for ``max_stall_s``, or a partition with records to process has had neither a
        settled record nor a finished attempt for ``max_stall_s`` (other than while it backs off on a
        transient error). A consumer that retries or backs off is moving; whether its dependencies are
        reachable is the caller's to weigh (``ServiceRuntime.add_consumer`` does).
        """
        if not self._running or self._stopping.is_set():
            return None
        now = time.monotonic() if now is None else now
        if self._step is not None:
            what, since = self._step
            if now - since > max_stall_s:
                return f"{what} has not returned for {now - since:.0f}s"
        for tp, state in self._partitions.items():
            retry = self._retries.get(tp)
            if retry is not None and retry.offset == state.next_offset and retry.kind is FailureKind.TRANSIENT:
                continue  # backing off on an unavailable dependency
            last = max(state.advanced_at, retry.at) if retry is not None else state.advanced_at
            if state.lag and now - last > max_stall_s:
                return (
                    f"{tp.topic}/{tp.partition} has {state.lag} records to process and made no progress "
                    f"for {now - last:.0f}s (next offset {state.next_offset})"
                )
        return None

    async def run(self) -> None:
        """Consume until ``stop()``. Raises only if Kafka cannot be reached at start-up."""
        await self._consumer.start()
        self._running = True
        try:
            while not self._stopping.is_set():
                self._follow_topics()
                if not self._subscribed:
                    await self._pause(self._poll_timeout_ms / 1000)
                    self.last_poll = time.monotonic()
                    continue
                self._step = ("poll", time.monotonic())
                batch = await self._consumer.getmany(timeout_ms=self._poll_timeout_ms, max_records=self._max_batch)
                self._step = None
                self.last_poll = time.monotonic()
                self._polled_in = self._rebalances
                await self._observe(batch)
                for tp, records in batch.items():
                    if self._rebalances != self._polled_in:
                        break  # the new assignment restarts from the committed offsets
                    await self._handle_partition(tp, records)
                    if self._stopping.is_set():
                        break
                await self._commit_pending()
                if (ended := self._ended_client_task()) is not None:
                    await self._replace_consumer(ended)
        finally:
            self._running = False
            self._step = None
            await self._commit_pending()
            await self._consumer.stop()

    def _ended_client_task(self) -> str | None:
        """Which of aiokafka's own background tasks (fetching, group coordination) has ended, if one has.

        They run for the consumer's life; one that ended means nothing is fetched again, and without an
        error: aiokafka's fetch routine swallows a ``CancelledError`` and ends (aio-libs/aiokafka#983).
        """
        fetcher = getattr(self._consumer, "_fetcher", None)
        coordinator = getattr(self._consumer, "_coordinator", None)
        for what, task in (
            ("fetch", getattr(fetcher, "_fetch_task", None)),
            ("group coordination", getattr(coordinator, "_coordination_task", None)),
        ):
            if isinstance(task, asyncio.Future) and task.done():
                return what
        return None

    async def _replace_consumer(self, ended: str) -> None:
        """Replace the aiokafka consumer whose ``ended`` task is gone by a new one of the same options.

        The handled offsets were committed just before; the old consumer is closed (leaving the group),
        the new one starts (retried with backoff while Kafka is unreachable) and subscribes again at the
        next loop turn, and its assignment starts at the committed offsets, so nothing is skipped (what
        was polled but not handled is redelivered).
        """
        log.warning(
            "aiokafka's %s task has ended; replacing the Kafka consumer",
            ended,
            extra={"group": self._group_id},
        )
        with contextlib.suppress(Exception):
            async with asyncio.timeout(REPLACED_STOP_TIMEOUT_S):
                await self._consumer.stop()
        self._rebalances += 1
        self._subscribed = frozenset()
        delay = self.retry_backoff_s
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(**self._consumer_options)
            try:
                await consumer.start()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                log.warning("the replacement Kafka consumer did not start, retrying in %.1fs: %r", delay, exc)
                await self._pause(delay)
                delay = min(delay * 2, self.max_retry_backoff_s)
                continue
            self._consumer = consumer
            self.replacements += 1
            metrics.CONSUMER_REPLACEMENTS.labels(self.service).inc()
            return

    def _wanted_topics(self) -> frozenset[str]:
        if self._topics_provider is None:
            return self._static_topics
        try:
            return frozenset(self._topics_provider())
        except Exception:
            log.exception("the topics provider failed; keeping the current subscription")
            return self._subscribed

    def _follow_topics(self) -> None:
        """Subscribe to the wanted topics when they differ from the subscribed ones.

        Called only between polls: the previous poll's offsets are committed (or handed to their
        transaction) and no batch is in hand, so the rebalance that follows revokes nothing pending.
        """
        wanted = self._wanted_topics()
        if wanted == self._subscribed:
            return
        if wanted:
            self._consumer.subscribe(sorted(wanted), listener=self._listener)
        else:
            self._consumer.unsubscribe()
        log.info(
            "subscription changed",
            extra={
                "topics.subscribed": sorted(wanted),
                "topics.added": sorted(wanted - self._subscribed),
                "topics.removed": sorted(self._subscribed - wanted),
            },
        )
        self._subscribed = wanted

    @staticmethod
    def _event(record: Any) -> Event:
        return Event(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=tuple(record.headers or ()),
            timestamp_ms=record.timestamp,
        )

    def _labels(self, tp: TopicPartition) -> tuple[str, str, str]:
        return (self.service, tp.topic, str(tp.partition))

    async def _fetch_position(self, tp: TopicPartition) -> int | None:
        """aiokafka's fetch position of ``tp`` (the next offset it will fetch) when it is known now; None,
        without waiting, while it is being reset (aiokafka's ``position`` would wait for the reset) or
        when the partition is no longer assigned."""
        try:
            async with asyncio.timeout(0):  # fires only if ``position`` suspends, i.e. would wait
                return int(await self._consumer.position(tp))
        except Exception:
            return None

    async def _observe(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """After each poll: the position and end of every assigned partition, and the lag gauges.

        A partition with records in ``batch`` has its first unsettled offset at the first of them. One
        without has every record before the fetch position settled (each polled record is settled, or
        the partition rewound to it, before the next poll), so the fetch position is its first unsettled
        offset: it is past transaction markers and aborted records, which ``read_committed`` never
        returns but the last stable offset and the high watermark count.
        """
        now = time.monotonic()
        assigned = set(self._consumer.assignment())
        for tp in set(self._partitions) - assigned:
            del self._partitions[tp]
            for gauge in (
                metrics.CONSUMER_LAG,
                metrics.CONSUMER_STALLED_SECONDS,
                metrics.CONSUMER_RETRY_ATTEMPTS,
                metrics.CONSUMER_WAITING_ON_DEPENDENCY,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(*self._labels(tp))
        for tp in assigned:
            state = self._partitions.get(tp)
            if state is None:
                state = self._partitions[tp] = PartitionState(advanced_at=now)
                metrics.CONSUMER_STALLED_SECONDS.labels(*self._labels(tp)).set_function(
                    functools.partial(self._stalled_seconds, state)
                )
            records = batch.get(tp)
            if records:
                state.next_offset = records[0].offset
            elif (position := await self._fetch_position(tp)) is not None:
                state.next_offset = position
            end = self._consumer.last_stable_offset(tp)
            if end is None or end < 0:
                end = self._consumer.highwater(tp)
            if end is not None:
                state.end_offset = end
            if state.lag == 0:
                state.advanced_at = now
            if state.lag is not None:
                metrics.CONSUMER_LAG.labels(*self._labels(tp)).set(state.lag)

    @staticmethod
    def _stalled_seconds(state: PartitionState) -> float:
        return state.stalled_seconds(time.monotonic())

    def _settled(self, tp: TopicPartition, next_offset: int) -> None:
        """Records before ``next_offset`` are handled or dead-lettered: the position advanced."""
        state = self._partitions.get(tp)
        if state is not None:
            state.next_offset = next_offset
            state.advanced_at = time.monotonic()
            if state.lag is not None:
                metrics.CONSUMER_LAG.labels(*self._labels(tp)).set(state.lag)
        if self._retries.pop(tp, None) is not None:
            metrics.CONSUMER_RETRY_ATTEMPTS.labels(*self._labels(tp)).set(0)
            metrics.CONSUMER_WAITING_ON_DEPENDENCY.labels(*self._labels(tp)).set(0)
        self._failures = 0

    async def _handle_partition(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        events = [self._event(r) for r in records]
        if not events:
            return
        await self._settle(tp, [events] if self._batch_handler is not None else [[e] for e in events])

    def _call_handler(self, events: Sequence[Event]) -> Callable[[], Awaitable[object]]:
        if self._batch_handler is not None:
            return functools.partial(self._batch_handler, events)
        assert self._handler is not None and len(events) == 1
        return functools.partial(self._handler, events[0])

    async def _settle(self, tp: TopicPartition, chunks: list[list[Event]]) -> None:
        """Handle ``chunks`` (consecutive, in offset order) until each is settled or one must wait.

        A chunk that fails with a transient error is rewound and retried after a backoff (nothing after
        it is settled meanwhile). One of several records that fails otherwise is split in halves, each
        handled on its own, until the failing record is alone: a permanent error dead-letters it at
        once, an unclassified one after ``max_attempts`` failed attempts (counted by its offset, so the
        count survives the rewind), and the partition goes on with the next record.
        """
        todo = list(reversed(chunks))
        while todo:
            if self._rebalances != self._polled_in:
                return  # revoked meanwhile: the new assignment restarts from the committed offsets
            chunk = todo.pop()
            retry = self._retries.get(tp)
            if len(chunk) > 1 and retry is not None and retry.offset == chunk[0].offset and retry.attempts:
                todo += [chunk[1:], chunk[:1]]  # the record that failed last time goes alone first
                continue
            error = await self._attempt(tp, chunk, self._call_handler(chunk), "handler")
            if error is _REBALANCED:
                return
            if error is None:
                metrics.EVENTS_CONSUMED.labels(self.service, tp.topic).inc(len(chunk))
                self._settled(tp, chunk[-1].offset + 1)
                continue
            assert isinstance(error, Exception)
            failure = self.classifier.classify(error)
            metrics.EVENTS_FAILED.labels(self.service, tp.topic).inc(len(chunk))
            metrics.CONSUMER_ERRORS.labels(self.service, tp.topic, failure.kind.value).inc()
            if failure.kind is FailureKind.TRANSIENT:
                await self._retry_later(tp, chunk[0], failure, error)
                return
            if len(chunk) > 1:
                log.warning(
                    "batch failed (%s); handling its halves apart to isolate the failing record",
                    failure.message,
                    extra={"topic": tp.topic, "partition": tp.partition, "offset": chunk[0].offset},
                )
                middle = len(chunk) // 2
                todo += [chunk[middle:], chunk[:middle]]
                continue
            event = chunk[0]
            if failure.kind is FailureKind.PERMANENT:
                reason, message = failure.reason_code, failure.message
            else:
                attempts = self._attempts_of(tp, event.offset) + 1
                if attempts < self.max_attempts:
                    await self._retry_later(tp, event, failure, error)
                    return
                reason = RETRIES_EXHAUSTED
                message = f"failed {attempts} attempts; last error: {failure.message}"
            if not await self._dead_letter_record(tp, event, reason, message):
                return

    async def _dead_letter_record(self, tp: TopicPartition, event: Event, reason: str, message: str) -> bool:
        """Dead-letter ``event`` (inside the partition's transaction when there is one) and settle it.

        False when that failed: the record is rewound and retried later (never skipped undead-lettered).
        """

        async def send() -> None:
            if self._dead_letters is None:
                raise RuntimeError(f"no dead-letter sink configured for {event.id} ({reason}: {message})")
            await self._dead_letters.send(event, reason, message)

        error = await self._attempt(tp, [event], send, "dead letter")
        if error is _REBALANCED:
            return False
        if error is not None:
            assert isinstance(error, Exception)
            failure = self.classifier.classify(error)
            kind = FailureKind.TRANSIENT if failure.kind is FailureKind.TRANSIENT else FailureKind.UNCLASSIFIED
            await self._retry_later(tp, event, Failure(kind, f"dead letter failed: {failure.message}"), error)
            return False
        metrics.EVENTS_DEAD_LETTERED.labels(self.service, event.topic, reason).inc()
        log.warning(
            "event dead-lettered",
            extra={"event.id": event.id, "offset": event.offset, "reason": reason, "detail": message},
        )
        self._settled(tp, event.offset + 1)
        return True

    async def _attempt(
        self, tp: TopicPartition, events: Sequence[Event], action: Callable[[], Awaitable[object]], what: str
    ) -> Exception | _Rebalanced | None:
        """Run ``action`` for ``events`` and settle their offsets: in one transaction (begin, action,
        commit with the next offset) or, without transactions, as the offset committed next.

        Returns the exception (the transaction aborted), ``_REBALANCED`` when the batch was polled before
        a rebalance (transactions only; nothing ran), or None.
        """
        self._step = (f"{what} on {tp.topic}/{tp.partition} at offset {events[0].offset}", time.monotonic())
        try:
            if self._transactions is None:
                try:
                    await action()
                except Exception as exc:
                    return exc
                self._pending[tp] = events[-1].offset + 1
                return None
            transactions = self._transactions
            async with self._commit_lock:  # a rebalance waits here until the transaction has ended
                if self._rebalances != self._polled_in:
                    return _REBALANCED
                try:
                    await transactions.begin()
                    await action()
                    await transactions.commit({tp: events[-1].offset + 1}, self._group_id)
                except Exception as exc:
                    await transactions.abort(exc)
                    return exc
            return None
        finally:
            self._step = None

    def _attempts_of(self, tp: TopicPartition, offset: int) -> int:
        retry = self._retries.get(tp)
        return retry.attempts if retry is not None and retry.offset == offset else 0

    async def _retry_later(self, tp: TopicPartition, event: Event, failure: Failure, error: Exception) -> None:
        """Remember the failure of the record at ``event``'s offset, rewind the partition to it and back off."""
        attempts = self._attempts_of(tp, event.offset)
        if failure.kind is not FailureKind.TRANSIENT:
            attempts += 1
        self._retries[tp] = RetryState(event.offset, attempts, failure.kind, failure.message, time.monotonic())
        labels = self._labels(tp)
        metrics.CONSUMER_RETRY_ATTEMPTS.labels(*labels).set(attempts)
        metrics.CONSUMER_WAITING_ON_DEPENDENCY.labels(*labels).set(1 if failure.kind is FailureKind.TRANSIENT else 0)
        extra = {
            "event.id": event.id,
            "topic": tp.topic,
            "partition": tp.partition,
            "offset": event.offset,
            "error.class": failure.kind.value,
            "attempts": attempts,
        }
        if failure.kind is FailureKind.TRANSIENT:
            log.warning("dependency unavailable; will retry: %s", failure.message, extra=extra)
        else:
            log.warning(
                "record failed (attempt %d of %d); will retry: %s",
                attempts,
                self.max_attempts,
                failure.message,
                exc_info=error,
                extra=extra,
            )
        if tp in self._consumer.assignment():  # else a rebalance moved it: its new owner starts at the commit
            self._consumer.seek(tp, event.offset)
        await self._backoff()

    async def _on_revoke(self) -> None:
        async with self._commit_lock:
            self._rebalances += 1
        await self._commit_pending()

    async def _backoff(self) -> None:
        self._failures += 1
        await self._pause(min(self.retry_backoff_s * 2 ** (self._failures - 1), self.max_retry_backoff_s))

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when ``stop()`` is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _commit_pending(self) -> None:
        async with self._commit_lock:
            if not self._pending:
                return
            offsets, self._pending = self._pending, {}
            self._step = ("offset commit", time.monotonic())
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, KafkaError) as exc:
                metrics.COMMIT_FAILURES.labels(self.service).inc()
                log.warning("offset commit failed; records will be redelivered: %s", exc)
            finally:
                self._step = None
