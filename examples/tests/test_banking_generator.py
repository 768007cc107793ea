"""The banking generator: deterministic, streamed, in time order, with the fraud and malformed mix it promises."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from aimesh.examples.banking import EXPECTED_REASON, GeneratorConfig, MalformedKind, Stream, generate_events
from aimesh.examples.banking.generator import to_us
from aimesh.examples.banking.population import luhn_valid
from aimesh.examples.banking.publisher import publish_events

END = datetime(2025, 3, 1, tzinfo=UTC)


def events(n: int, seed: int = 1, **options: Any) -> list[Any]:
    return list(generate_events(GeneratorConfig(events=n, seed=seed, end=END, **options)))


@pytest.fixture(scope="module")
def sample() -> list[Any]:
    return events(60_000, seed=11)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first, again, other = events(3000, seed=5), events(3000, seed=5), events(3000, seed=6)
    assert [(e.stream, e.key, e.value) for e in first] == [(e.stream, e.key, e.value) for e in again]
    assert [e.value for e in first] != [e.value for e in other]


def test_events_are_in_time_order_within_the_span(sample: list[Any]) -> None:
    times = [e.time_us for e in sample]
    assert times == sorted(times)
    assert to_us(END - timedelta(days=30)) <= times[0] and times[-1] <= to_us(END)
    assert times[-1] > to_us(END - timedelta(hours=1))
    valid = [orjson.loads(e.value) for e in sample[:100] if e.malformed is None]
    assert all(datetime.fromisoformat(r["timestamp"]).tzinfo is not None for r in valid)


def test_fraud_rate_and_patterns(sample: list[Any]) -> None:
    transactions = [e for e in sample if e.stream is Stream.TRANSACTIONS and e.malformed is None]
    fraud = [e for e in transactions if e.is_fraud]
    assert 0.01 <= len(fraud) / len(transactions) <= 0.03
    patterns = Counter(e.fraud.value for e in fraud)
    assert {"card_testing", "account_takeover", "risky_merchant"} <= set(patterns)
    risky = {"gaming", "crypto", "gift_cards", "electronics"}
    by_category = Counter(orjson.loads(e.value)["merchant_category"] in risky for e in fraud)
    assert by_category[True] > by_category[False]


def test_card_testing_is_small_charges_then_a_big_one(sample: list[Any]) -> None:
    by_card: dict[str, list[float]] = {}
    for e in sample:
        if e.fraud is not None and e.fraud.value == "card_testing" and e.malformed is None:
            by_card.setdefault(e.key, []).append(orjson.loads(e.value)["amount"])
    assert any(max(amounts) >= 400 for amounts in by_card.values())
    for amounts in by_card.values():
        assert all(a <= 3.0 or a >= 400 for a in amounts)
        assert amounts[0] <= 3.0, "a burst starts with small test charges"
        assert all(a <= 3.0 for a, b in itertools.pairwise(amounts) if b >= 400), "the big charge follows a test"


def test_chargebacks_follow_their_transactions(sample: list[Any]) -> None:
    tx_time: dict[str, int] = {}
    fraud_ids: set[str] = set()
    reasons: Counter[str] = Counter()
    charged_back: set[str] = set()
    for e in sample:
        if e.malformed is not None:
            continue
        record = orjson.loads(e.value)
        if e.stream is Stream.TRANSACTIONS:
            tx_time[e.event_id] = e.time_us
            if e.is_fraud:
                fraud_ids.add(e.event_id)
            continue
        delay = e.time_us - tx_time[record["transaction_id"]]
        reasons[record["reason"]] += 1
        charged_back.add(record["transaction_id"])
        if record["reason"] == "fraud":
            assert record["transaction_id"] in fraud_ids
            assert timedelta(days=1) <= timedelta(microseconds=delay) <= timedelta(days=10, minutes=30)
        else:
            assert record["transaction_id"] not in fraud_ids
    old_fraud = {i for i in fraud_ids if tx_time[i] < to_us(END - timedelta(days=11))}
    assert 0.85 <= len(old_fraud & charged_back) / len(old_fraud) <= 0.95
    assert reasons["dispute"] > 0


def test_malformed_records_are_reported_on_the_side(sample: list[Any]) -> None:
    malformed = [e for e in sample if e.malformed is not None]
    assert 0.003 <= len(malformed) / len(sample) <= 0.008
    assert set(Counter(e.malformed for e in malformed)) == set(MalformedKind)
    for e in malformed:
        assert b"malformed" not in e.value and e.malformed.value.encode() not in e.value
    assert not [e for e in events(2000, malformed_fraction=0.0) if e.malformed is not None]
    assert all(e.malformed is not None for e in events(200, malformed_fraction=1.0))
    assert set(EXPECTED_REASON) == set(MalformedKind)


def test_cards_have_luhn_valid_16_digit_numbers(sample: list[Any]) -> None:
    numbers = {e.card_number for e in sample if e.card_number}
    assert numbers and all(len(n) == 16 and luhn_valid(n) for n in numbers)
    cards_by_number: dict[str, set[str]] = {}
    for e in sample:
        if e.card_number:
            cards_by_number.setdefault(e.card_number, set()).add(e.key)
    assert all(len(cards) == 1 for cards in cards_by_number.values())


def test_streams_without_materialising_the_whole_set() -> None:
    stream = generate_events(GeneratorConfig(events=50_000_000, seed=3, end=END, customers=1000))
    head = list(itertools.islice(stream, 1000))
    assert len(head) == 1000 and all(e.stream is Stream.TRANSACTIONS for e in head[:10])


@dataclass
class Meta:
    partition: int
    offset: int


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | str | None]] = []

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        assert headers == ()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(Meta(0, len(self.sent)))
        self.sent.append((topic, value, key))
        return fut


async def test_publisher_sends_json_keyed_by_card_and_summarises() -> None:
    generated = events(3000, seed=9)
    producer = FakeProducer()
    acked: list[int] = []

    summary = await publish_events(producer, generated, max_in_flight=64, on_acked=acked.append)  # type: ignore[arg-type]

    assert summary.total == 3000 == len(acked)
    assert summary.per_topic["bank.card-transactions"] + summary.per_topic["bank.chargebacks"] == 3000
    assert [(t.startswith("bank."), v, k) for t, v, k in producer.sent] == [(True, e.value, e.key) for e in generated]
    assert len(summary.malformed) == sum(e.malformed is not None for e in generated)
    first = summary.malformed[0]
    assert producer.sent[first.offset][1] == next(e.value for e in generated if e.event_id == first.event_id)
    assert first.expected_reason == EXPECTED_REASON[first.kind]
    assert summary.fraud_transactions == sum(e.is_fraud and e.malformed is None for e in generated)
    assert summary.card_numbers == {e.card_number for e in generated if e.card_number}
