"""The seeded, streamed banking event generator.

``generate_events(config)`` yields exactly ``config.events`` upstream records (transactions and
chargebacks, some deliberately malformed) in time order, the last one at or before ``config.end``.
Memory is bounded by the population and the pending queue (bursts in progress, chargebacks not yet
due), never by the number of events: millions stream through.

Time model: the span ``[end - span, end]`` is cut into ``events`` equal slots, each with one event at
a jittered time. A slot emits the earliest pending event that is due (the next charge of a card-testing
burst, a chargeback), otherwise a fresh transaction. Pending events still not due at ``end`` have not
happened yet and are never emitted (recent fraud has no chargeback yet, as in a real bank).

Fraud (~2% of transactions with the defaults):

- card testing: a burst of 3-6 small online charges at risky merchants from an unknown device and a
  foreign country, minutes apart, then one big charge;
- account takeover: a new device, a country other than home, a high amount;
- risky merchant categories (gaming, crypto, gift_cards, electronics) carry an elevated base fraud rate.

Chargebacks: ``fraud_chargeback_rate`` of fraudulent transactions get a ``fraud`` chargeback 1-10 days
later; ``dispute_rate`` of legitimate ones get a ``dispute`` chargeback 2-20 days later.

Determinism: one ``random.Random(seed)`` drives everything, so the same config yields the same bytes.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from aimesh.examples.banking.malformed import corrupt, kinds_for
from aimesh.examples.banking.model import FraudPattern, GeneratedEvent, Stream
from aimesh.examples.banking.population import (
    COUNTRIES,
    CURRENCY_BY_COUNTRY,
    RISKY_CATEGORIES,
    Card,
    Customer,
    Merchant,
    Population,
    build_population,
    device_id,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_US = 60_000_000
DAY_US = 24 * 60 * MINUTE_US
IDS_PER_SEED = 10**7


def now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to generate. ``end`` defaults to now (rounded to the millisecond); fix it for reproducible runs."""

    events: int = 10_000
    seed: int = 42
    end: datetime = field(default_factory=now_ms)
    span: timedelta = timedelta(days=30)
    customers: int | None = None
    """Default: one customer per 50 events, between 20 and 200000."""
    merchants: int | None = None
    """Default: one merchant per 200 events, between 20 and 5000."""
    malformed_fraction: float = 0.005
    card_testing_rate: float = 0.0015
    account_takeover_rate: float = 0.004
    risky_merchant_fraud_rate: float = 0.04
    opportunistic_fraud_rate: float = 0.001
    fraud_chargeback_rate: float = 0.9
    dispute_rate: float = 0.003

    def __post_init__(self) -> None:
        if self.events < 0:
            raise ValueError("events must be >= 0")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")
        if not 0.0 <= self.malformed_fraction <= 1.0:
            raise ValueError("malformed_fraction must be within [0, 1]")


def default_population(events: int) -> tuple[int, int]:
    """How many customers and merchants a run of ``events`` events draws when the config names none."""
    return min(200_000, max(20, events // 50)), min(5000, max(20, events // 200))


def rfc3339(time_us: int) -> str:
    """``2024-05-01T12:34:56.789Z`` (millisecond precision, UTC)."""
    moment = EPOCH + timedelta(microseconds=time_us)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class _Charge:
    customer: Customer
    card: Card
    merchant: Merchant
    amount: float
    country: str
    device: str
    channel: str
    fraud: FraudPattern | None


@dataclass(frozen=True, slots=True)
class _Chargeback:
    transaction_id: str
    card_id: str
    reason: str


class _Generator:
    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311  # a reproducible simulation, not cryptography
        default_customers, default_merchants = default_population(config.events)
        customers = config.customers or default_customers
        merchants = config.merchants or default_merchants
        self.population: Population = build_population(
            self.rng, customers=customers, merchants=merchants, namespace=f"{config.seed % 1000:03d}-"
        )
        activity = [self.rng.paretovariate(1.5) for _ in self.population.customers]
        self.customer_weights = list(itertools.accumulate(activity))
        self.pending: list[tuple[int, int, _Charge | _Chargeback]] = []
        self.seq = itertools.count()
        id_base = (config.seed % 1000) * IDS_PER_SEED
        self.tx_ids = (f"tx-{id_base + n:010d}" for n in itertools.count(1))
        self.cb_ids = (f"cb-{id_base + n:010d}" for n in itertools.count(1))

    def run(self) -> Iterator[GeneratedEvent]:
        cfg = self.config
        end_us = to_us(cfg.end) // 1000 * 1000
        span_us = cfg.span // timedelta(microseconds=1)
        start_us = end_us - span_us
        for slot in range(cfg.events):
            jitter = self.rng.random()
            t = start_us + int((slot + jitter) * span_us / cfg.events) // 1000 * 1000
            t = min(t, end_us)
            if self.pending and self.pending[0][0] <= t:
                _, _, item = heapq.heappop(self.pending)
                if isinstance(item, _Chargeback):
                    yield self._chargeback(item, t)
                else:
                    yield self._transaction(item, t)
            else:
                yield self._transaction(self._fresh_charge(t), t)

    def _schedule(self, due_us: int, item: _Charge | _Chargeback) -> None:
        heapq.heappush(self.pending, (due_us, next(self.seq), item))

    def _customer(self) -> Customer:
        return self.rng.choices(self.population.customers, cum_weights=self.customer_weights)[0]

    def _merchant(self, *, risky: bool = False) -> Merchant:
        return self.rng.choice(self.population.risky_merchants if risky else self.population.merchants)

    def _foreign(self, home: str) -> str:
        return self.rng.choice([c for c in COUNTRIES if c != home])

    def _fresh_charge(self, t: int) -> _Charge:
        rng, cfg = self.rng, self.config
        customer = self._customer()
        card = rng.choice(customer.cards)
        r = rng.random()
        if r < cfg.card_testing_rate:
            return self._card_testing_burst(customer, card, t)
        if r < cfg.card_testing_rate + cfg.account_takeover_rate:
            return _Charge(
                customer,
                card,
                self._merchant(risky=rng.random() < 0.7),
                round(rng.uniform(800, 4500), 2),
                self._foreign(customer.home_country),
                device_id(rng),
                "online",
                FraudPattern.ACCOUNT_TAKEOVER,
            )
        merchant = self._merchant()
        risky = merchant.category in RISKY_CATEGORIES
        fraud_rate = cfg.risky_merchant_fraud_rate if risky else cfg.opportunistic_fraud_rate
        fraud = None
        if rng.random() < fraud_rate:
            fraud = FraudPattern.RISKY_MERCHANT if risky else FraudPattern.OPPORTUNISTIC
        amount = rng.lognormvariate(0, 0.7) * customer.typical_amount * (4 if merchant.category == "travel" else 1)
        if fraud is not None:
            amount = amount * rng.uniform(3, 10) + 100
        travelling = rng.random() < 0.03
        country = self._foreign(customer.home_country) if travelling or fraud else customer.home_country
        channel = "online" if merchant.online else ("atm" if rng.random() < 0.05 else "pos")
        device = device_id(rng) if fraud is not None and rng.random() < 0.5 else rng.choice(customer.devices)
        return _Charge(customer, card, merchant, round(min(amount, 49_999.0), 2), country, device, channel, fraud)

    def _card_testing_burst(self, customer: Customer, card: Card, t: int) -> _Charge:
        rng = self.rng
        country, device = self._foreign(customer.home_country), device_id(rng)

        def test_charge(amount: float) -> _Charge:
            merchant = self._merchant(risky=True)
            return _Charge(customer, card, merchant, amount, country, device, "online", FraudPattern.CARD_TESTING)

        due = t
        for _ in range(rng.randint(2, 5)):
            due += rng.randint(MINUTE_US // 3, 5 * MINUTE_US)
            self._schedule(due, test_charge(round(rng.uniform(0.5, 3.0), 2)))
        due += rng.randint(MINUTE_US, 30 * MINUTE_US)
        self._schedule(due, test_charge(round(rng.uniform(400, 3000), 2)))
        return test_charge(round(rng.uniform(0.5, 3.0), 2))

    def _transaction(self, charge: _Charge, t: int) -> GeneratedEvent:
        tx_id = next(self.tx_ids)
        record = {
            "transaction_id": tx_id,
            "card_id": charge.card.card_id,
            "card_number": charge.card.card_number,
            "customer_id": charge.customer.customer_id,
            "merchant_id": charge.merchant.merchant_id,
            "merchant_category": charge.merchant.category,
            "amount": charge.amount,
            "currency": CURRENCY_BY_COUNTRY.get(charge.country, "EUR"),
            "country": charge.country,
            "device_id": charge.device,
            "channel": charge.channel,
            "timestamp": rfc3339(t),
        }
        event = self._emit(
            Stream.TRANSACTIONS, record=record, event_id=tx_id, key=charge.card.card_id, t=t, fraud=charge.fraud
        )
        if event.malformed is None:
            rate = self.config.fraud_chargeback_rate if charge.fraud else self.config.dispute_rate
            if self.rng.random() < rate:
                days = (1, 10) if charge.fraud else (2, 20)
                due = t + self.rng.randint(days[0] * DAY_US, days[1] * DAY_US)
                reason = "fraud" if charge.fraud else "dispute"
                self._schedule(due, _Chargeback(tx_id, charge.card.card_id, reason))
        return event

    def _chargeback(self, item: _Chargeback, t: int) -> GeneratedEvent:
        cb_id = next(self.cb_ids)
        record = {
            "chargeback_id": cb_id,
            "transaction_id": item.transaction_id,
            "card_id": item.card_id,
            "reason": item.reason,
            "timestamp": rfc3339(t),
        }
        return self._emit(Stream.CHARGEBACKS, record=record, event_id=cb_id, key=item.card_id, t=t, fraud=None)

    def _emit(
        self,
        stream: Stream,
        *,
        record: dict[str, Any],
        event_id: str,
        key: str,
        t: int,
        fraud: FraudPattern | None,
    ) -> GeneratedEvent:
        malformed = None
        value = orjson.dumps(record)
        if self.rng.random() < self.config.malformed_fraction:
            malformed = self.rng.choice(kinds_for(stream))
            value = corrupt(self.rng, stream, record, malformed)
        return GeneratedEvent(
            stream=stream,
            key=key,
            value=value,
            event_id=event_id,
            time_us=t,
            malformed=malformed,
            fraud=fraud,
            card_number=str(record.get("card_number", "")),
        )


def generate_events(config: GeneratorConfig) -> Iterator[GeneratedEvent]:
    """Yield ``config.events`` records in time order (see the module doc); lazy, bounded memory."""
    return _Generator(config).run()
