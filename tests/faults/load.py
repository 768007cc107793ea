"""The steady load of a fault scenario: upstream events into Kafka, ``Score`` calls, health probes.

- ``Upstream`` publishes card transactions at a fixed rate with known event ids, as a bank would (JSON, key =
  card id). Every tenth carries a raw card number in a Kafka header, every tenth another one in an
  undeclared payload field (both must never leave ingest raw). An event counts as sent once Kafka
  acknowledged it; unacknowledged ones are re-sent (a fresh producer after a failure), so an outage can
  only delay them, and a re-send of a record that was in fact written is a duplicate ingest must drop.
- ``Scorer`` calls ``Score`` at a fixed rate with a 1 s deadline and records every outcome.
- ``HealthProbe`` reads every service's ``/healthz`` and ``/readyz`` once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from aimesh.api.common.v1 import common_pb2
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from tests.faults.stack import FaultStack

SOURCE_TOPIC = "bank.card-transactions"
SOURCE = "card_transactions"
CATEGORIES = ("grocery", "fuel", "restaurant", "travel", "fashion", "pharmacy")


def luhn_pan(rng: random.Random, prefix: str = "4") -> str:
    """A 16-digit, Luhn-valid card number."""
    digits = [int(c) for c in prefix] + [rng.randrange(10) for _ in range(15 - len(prefix))]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Card:
    card_id: str
    customer_id: str
    pan: str


@dataclass(frozen=True)
class UpstreamEvent:
    event_id: str
    card: Card
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def transaction(event_id: str, card: Card, rng: random.Random, **extra: object) -> dict[str, object]:
    """A valid card transaction of the banking pack's ``card_transactions`` source."""
    return {
        "transaction_id": event_id,
        "card_id": card.card_id,
        "card_number": card.pan,
        "customer_id": card.customer_id,
        "merchant_id": f"m-{rng.randrange(50)}",
        "merchant_category": rng.choice(CATEGORIES),
        "amount": round(rng.uniform(1, 300), 2),
        "currency": "EUR",
        "country": "DE",
        "device_id": f"d-{card.card_id}",
        "channel": "pos",
        "timestamp": rfc3339_now(),
        **extra,
    }


def make_cards(prefix: str, count: int, rng: random.Random) -> list[Card]:
    return [Card(f"{prefix}-c{i}", f"{prefix}-u{i}", luhn_pan(rng)) for i in range(count)]


@dataclass
class Upstream:
    """Publishes ``rate`` events/s until ``stop_generating``; ``drain`` waits until every one is acknowledged."""

    bootstrap: str
    prefix: str
    cards: list[Card]
    rate: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    pending: deque[UpstreamEvent] = field(default_factory=deque)
    acked: dict[str, str] = field(default_factory=dict)
    """event id -> card id of every acknowledged event."""
    pans: set[str] = field(default_factory=set)
    generated: int = 0
    sends: int = 0
    send_failures: int = 0
    producer_restarts: int = 0
    in_flight: int = 0
    _generating: bool = True

    @property
    def drained(self) -> bool:
        """Generation stopped and every event acknowledged (none pending, none in flight)."""
        return not self._generating and not self.pending and self.in_flight == 0

    def _next(self) -> UpstreamEvent:
        n = self.generated
        self.generated += 1
        card = self.cards[n % len(self.cards)]
        self.pans.add(card.pan)
        event_id = f"{self.prefix}-e{n}"
        extra: dict[str, object] = {}
        headers: tuple[tuple[str, bytes], ...] = ()
        if n % 10 == 3:
            pan = luhn_pan(self.rng, "5")
            self.pans.add(pan)
            extra["memo"] = f"refund to card {pan}"
        if n % 10 == 7:
            pan = luhn_pan(self.rng, "37")
            self.pans.add(pan)
            headers = (("x-card-number", pan.encode()),)
        value = orjson.dumps(transaction(event_id, card, self.rng, **extra))
        return UpstreamEvent(event_id, card, value, headers)

    async def generate(self) -> None:
        started = time.monotonic()
        while self._generating:
            due = int((time.monotonic() - started) * self.rate) - self.generated
            for _ in range(max(0, due)):
                self.pending.append(self._next())
            await asyncio.sleep(0.05)

    def stop_generating(self) -> None:
        self._generating = False

    async def deliver(self) -> None:
        """Send pending events in chunks; re-queue what was not acknowledged and start a fresh producer."""
        producer: AIOKafkaProducer | None = None
        try:
            while self._generating or self.pending:
                if not self.pending:
                    await asyncio.sleep(0.05)
                    continue
                if producer is None:
                    producer = await self._producer()
                    if producer is None:
                        await asyncio.sleep(1.0)
                        continue
                chunk = [self.pending.popleft() for _ in range(min(len(self.pending), 500))]
                self.in_flight = len(chunk)
                try:
                    failed = await self._send(producer, chunk)
                except BaseException:
                    self.pending.extendleft(reversed(chunk))
                    raise
                finally:
                    self.in_flight = 0
                if failed:
                    self.send_failures += len(failed)
                    self.pending.extendleft(reversed(failed))
                    await _close(producer)
                    producer = None
                    self.producer_restarts += 1
                    await asyncio.sleep(1.0)
        finally:
            if producer is not None:
                await _close(producer)

    async def _producer(self) -> AIOKafkaProducer | None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=10,
            request_timeout_ms=8000,
            retry_backoff_ms=300,
        )
        try:
            await asyncio.wait_for(producer.start(), timeout=10)
        except (KafkaError, OSError, TimeoutError):
            await _close(producer)
            return None
        return producer

    async def _send(self, producer: AIOKafkaProducer, chunk: list[UpstreamEvent]) -> list[UpstreamEvent]:
        futures: list[asyncio.Future[object]] = []
        try:
            for event in chunk:
                futures.append(
                    await asyncio.wait_for(
                        producer.send(
                            SOURCE_TOPIC, event.value, key=event.card.card_id.encode(), headers=list(event.headers)
                        ),
                        timeout=10,
                    )
                )
        except (KafkaError, OSError, TimeoutError):
            pass
        self.sends += len(futures)
        failed: list[UpstreamEvent] = list(chunk[len(futures) :])
        done: set[asyncio.Future[object]] = set()
        if futures:
            done, _ = await asyncio.wait(futures, timeout=15)
        for event, fut in zip(chunk, futures, strict=False):
            if fut in done and not fut.cancelled() and fut.exception() is None:
                self.acked[event.event_id] = event.card.card_id
            else:
                failed.append(event)
        return failed


async def _close(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), timeout=5)


@dataclass(frozen=True)
class ScoreOutcome:
    t: float
    code: str
    request_id: str
    event_id: str
    detail: str


def score_request(request_id: str, card: Card, rng: random.Random) -> inference_pb2.ScoreRequest:
    context = {
        "amount": common_pb2.Value(double_value=round(rng.uniform(1, 300), 2)),
        "merchant_id": common_pb2.Value(string_value=f"m-{rng.randrange(50)}"),
        "merchant_category": common_pb2.Value(string_value=rng.choice(CATEGORIES)),
        "country": common_pb2.Value(string_value="DE"),
        "device_id": common_pb2.Value(string_value=f"d-{card.card_id}"),
    }
    return inference_pb2.ScoreRequest(
        request_id=request_id,
        model="fraud",
        entity_ids={"card": card.card_id, "customer": card.customer_id},
        context=context,
    )


@dataclass
class Scorer:
    """``rate`` Score calls/s with a 1 s deadline, each outcome recorded with its time (s since ``t0``)."""

    stack: FaultStack
    prefix: str
    cards: list[Card]
    rate: float
    t0: float
    outcomes: list[ScoreOutcome] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    _running: bool = True

    def stop(self) -> None:
        self._running = False

    async def run(self) -> None:
        async with self.stack.channel("inference") as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            tasks: set[asyncio.Task[None]] = set()
            n = 0
            started = time.monotonic()
            while self._running:
                while n < (time.monotonic() - started) * self.rate:
                    task = asyncio.create_task(self._one(stub, f"{self.prefix}-s{n}", self.cards[n % len(self.cards)]))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    n += 1
                await asyncio.sleep(0.02)
            if tasks:
                await asyncio.wait(tasks, timeout=5)

    async def _one(self, stub: inference_pb2_grpc.InferenceServiceStub, request_id: str, card: Card) -> None:
        t = time.monotonic() - self.t0
        try:
            reply = await stub.Score(
                score_request(request_id, card, self.rng), timeout=1.0, metadata=self.stack.metadata or None
            )
            self.outcomes.append(ScoreOutcome(t, "OK", request_id, reply.event_id, ""))
        except grpc.aio.AioRpcError as exc:
            self.outcomes.append(ScoreOutcome(t, exc.code().name, request_id, "", (exc.details() or "")[:200]))


@dataclass(frozen=True)
class HealthSample:
    t: float
    service: str
    live: int | None
    """/healthz status code; None when nothing answered (the process is down)."""
    ready: int | None
    ready_body: str
    live_body: str = ""
    """/healthz body when it answered 503 (names the wedged loops and why), else empty."""


@dataclass
class HealthProbe:
    stack: FaultStack
    t0: float
    samples: list[HealthSample] = field(default_factory=list)
    _running: bool = True

    def stop(self) -> None:
        self._running = False

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=1.5) as client:
            while self._running:
                tick = time.monotonic()
                await asyncio.gather(*(self._sample(client, name) for name in self.stack.services))
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

    async def _sample(self, client: httpx.AsyncClient, name: str) -> None:
        t = time.monotonic() - self.t0
        admin = self.stack.admin(name)
        live: int | None = None
        ready: int | None = None
        body = ""
        live_body = ""
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get(f"{admin}/healthz")
            live = response.status_code
            if live != 200:
                live_body = response.text[:1000]
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get(f"{admin}/readyz")
            ready, body = response.status_code, response.text[:300]
        self.samples.append(HealthSample(t, name, live, ready, body, live_body))

    def of(self, service: str) -> Sequence[HealthSample]:
        return [s for s in self.samples if s.service == service]
