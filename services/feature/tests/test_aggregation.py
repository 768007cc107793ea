"""The shared aggregation function: windows, strictly-before semantics, novelty, defaults."""

from __future__ import annotations

import random

import pytest

from aimesh.feature.aggregation import (
    EMPTY_HISTORY,
    EntityHistory,
    HistoryEvent,
    compute_features,
    requirements,
)
from aimesh.feature.definitions import FRAUD_V1_FEATURES, REGISTRY

T = 1_767_225_600_000_000
H = 3_600_000_000
DAY = 24 * H
FEATURES = REGISTRY.feature_service("fraud_v1")
CONTEXT = {"amount": 99.0, "merchant_id": "m9", "merchant_category": "crypto", "country": "DE", "device_id": "d1"}


def values(card: EntityHistory, customer: EntityHistory = EMPTY_HISTORY, at: int = T, **context: object):  # type: ignore[no-untyped-def]
    vector = compute_features(FEATURES, {"card": card, "customer": customer}, {**CONTEXT, **context}, at)  # type: ignore[dict-item]
    return dict(zip(FRAUD_V1_FEATURES, vector.values, strict=True)), dict(
        zip(FRAUD_V1_FEATURES, vector.event_times_us, strict=True)
    )


def history(
    *events: HistoryEvent, countries: tuple[str, ...] = ("DE",), devices: tuple[str, ...] = ("d1",)
) -> EntityHistory:
    return EntityHistory(
        list(events), {"country": set(countries), "device_id": set(devices)}, max(e.ts_us for e in events)
    )


def ev(i: int, ts: int, amount: float = 10.0, merchant: str = "m1") -> HistoryEvent:
    return HistoryEvent(f"e{i}", ts, amount, merchant)


def test_fraud_v1_is_the_documented_ordered_list() -> None:
    assert [f.name for f in FEATURES] == list(FRAUD_V1_FEATURES)
    assert len(FRAUD_V1_FEATURES) == 16
    needs = requirements(FEATURES)
    assert needs.entities == {"card", "customer"}
    assert needs.context_fields == {"amount", "merchant_category", "country", "device_id"}


def test_no_history_gives_defaults_and_missing() -> None:
    vals, times = values(EMPTY_HISTORY)
    assert vals["card_txn_count_1h"] == vals["card_txn_amount_sum_24h"] == vals["customer_txn_count_24h"] == 0.0
    assert vals["card_amount_mean_7d"] == vals["customer_amount_mean_7d"] == 0.0
    assert vals["card_seconds_since_prev"] == 30 * 86400.0
    assert vals["card_country_is_new"] == vals["card_device_is_new"] == 1.0
    assert vals["amount"] == 99.0
    assert vals["amount_to_card_mean_7d"] == 99.0
    assert vals["merchant_category_risk"] == 1.0
    assert times["card_txn_count_1h"] is None and times["customer_txn_count_24h"] is None
    assert times["amount_to_card_mean_7d"] is None  # depends on the card's history
    assert times["amount"] == T  # the request alone: always present


def test_window_edges_are_open_and_strictly_before_t() -> None:
    card = history(
        ev(1, T - H),  # exactly 1 h before: outside (t-1h, t)
        ev(2, T - H + 1, amount=5.0, merchant="m2"),  # just inside
        ev(3, T, amount=1000.0),  # at t: not before t
        ev(4, T - DAY, amount=7.0),  # exactly 24 h before: outside
        ev(5, T - DAY + 1, amount=3.0, merchant="m3"),
        ev(6, T - 7 * DAY + 1, amount=20.0),
        ev(7, T - 7 * DAY, amount=500.0),  # outside 7 d
    )
    vals, _ = values(card.before(T))
    assert vals["card_txn_count_1h"] == 1.0
    assert vals["card_txn_amount_sum_1h"] == 5.0
    assert vals["card_txn_count_24h"] == 3.0  # e1, e2, e5
    assert vals["card_txn_amount_sum_24h"] == 18.0
    assert vals["card_distinct_merchants_24h"] == 3.0
    assert vals["card_amount_mean_7d"] == pytest.approx((10 + 5 + 7 + 3 + 20) / 5)
    assert vals["amount_to_card_mean_7d"] == 99.0 / (vals["card_amount_mean_7d"] + 1)
    assert vals["card_seconds_since_prev"] == (H - 1) / 1e6  # e2 is the newest before t, not e3


def test_seconds_since_prev_is_capped_at_30_days() -> None:
    vals, times = values(history(ev(1, T - 40 * DAY)))
    assert vals["card_seconds_since_prev"] == 30 * 86400.0
    assert times["card_seconds_since_prev"] == T - 40 * DAY


def test_novelty_of_country_and_device() -> None:
    card = history(ev(1, T - H), countries=("DE", "FR"), devices=("d1",))
    vals, _ = values(card, country="FR", device_id="d2")
    assert vals["card_country_is_new"] == 0.0
    assert vals["card_device_is_new"] == 1.0
    vals, _ = values(card, country="US", device_id="d1")
    assert vals["card_country_is_new"] == 1.0
    assert vals["card_device_is_new"] == 0.0


def test_customer_features_use_the_customer_history_and_event_time_is_the_newest() -> None:
    customer = history(ev(1, T - 2 * H, amount=1.0), ev(2, T - 3 * H, amount=2.0))
    card = history(ev(3, T - 5 * H))
    vals, times = values(card, customer)
    assert vals["customer_txn_count_24h"] == 2.0
    assert vals["customer_txn_amount_sum_24h"] == 3.0
    assert times["customer_txn_count_24h"] == T - 2 * H
    assert times["card_txn_count_24h"] == T - 5 * H
    assert times["merchant_category_risk"] == T - 2 * H


def test_the_order_of_events_never_changes_a_value() -> None:
    rng = random.Random(7)
    events = [
        ev(i, T - rng.randrange(1, 7 * DAY), amount=rng.uniform(0.01, 5000), merchant=f"m{i % 5}") for i in range(300)
    ]
    first, _ = values(history(*events))
    for _ in range(5):
        rng.shuffle(events)
        again, _ = values(history(*events))
        assert again == first


def test_low_risk_category() -> None:
    vals, _ = values(EMPTY_HISTORY, merchant_category="grocery")
    assert vals["merchant_category_risk"] == 0.0
