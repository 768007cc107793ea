"""The shared aggregation function: windows, strictly-before semantics, novelty, defaults, TTL, generic aggregations."""

from __future__ import annotations

import math
import random

import pytest

from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import load_file, parse_yaml
from aimesh.feature.history import EMPTY_HISTORY, EntityHistory, HistoryEvent
from aimesh.feature.serving.aggregation import Status, compute_features

from .conftest import FRAUD_V1_FEATURES, FRAUD_V1_FILE

T = 1_767_225_600_000_000
H = 3_600_000_000
DAY = 24 * H
WEEK = 7 * DAY
REGISTRY = Registry(load_file(FRAUD_V1_FILE))
FEATURES = REGISTRY.feature_service("fraud_v1")
CONTEXT = {"amount": 99.0, "merchant_id": "m9", "merchant_category": "crypto", "country": "DE", "device_id": "d1"}


def values(card: EntityHistory, customer: EntityHistory = EMPTY_HISTORY, at: int = T, **context: object):  # type: ignore[no-untyped-def]
    histories = {"card_txn_stats": card.before(at, WEEK), "customer_txn_stats": customer.before(at, WEEK)}
    vector = compute_features(FEATURES, histories, {**CONTEXT, **context}, at, REGISTRY)  # type: ignore[dict-item]
    return dict(zip(FRAUD_V1_FEATURES, vector.values, strict=True)), dict(
        zip(FRAUD_V1_FEATURES, vector.event_times_us, strict=True)
    )


def history(
    *events: HistoryEvent, countries: tuple[str, ...] = ("DE",), devices: tuple[str, ...] = ("d1",)
) -> EntityHistory:
    first = min(e.ts_us for e in events)
    seen = {"country": dict.fromkeys(countries, first), "device_id": dict.fromkeys(devices, first)}
    return EntityHistory(events, seen)


def ev(i: int, ts: int, amount: float = 10.0, merchant: str = "m1") -> HistoryEvent:
    return HistoryEvent(f"e{i}", ts, {"amount": amount, "merchant_id": merchant})


def test_fraud_v1_is_the_documented_ordered_list() -> None:
    assert [f.name for f in FEATURES] == list(FRAUD_V1_FEATURES)
    assert len(FRAUD_V1_FEATURES) == 16
    needs = REGISTRY.requirements(FEATURES)
    assert needs.entities == ("card", "customer")
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
    assert times["amount"] is None  # the request alone: always present, no event behind it


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
    vals, _ = values(card)
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


def test_novelty_of_country_and_device_counts_only_values_first_seen_before_t() -> None:
    card = history(ev(1, T - H), countries=("DE", "FR"), devices=("d1",))
    vals, _ = values(card, country="FR", device_id="d2")
    assert vals["card_country_is_new"] == 0.0
    assert vals["card_device_is_new"] == 1.0
    vals, _ = values(card, country="US", device_id="d1")
    assert vals["card_country_is_new"] == 1.0
    assert vals["card_device_is_new"] == 0.0
    vals, _ = values(card, at=T - H, country="FR")  # FR was first seen at T - H: not before
    assert vals["card_country_is_new"] == 1.0


def test_customer_features_use_the_customer_history_and_event_time_is_the_newest() -> None:
    customer = history(ev(1, T - 2 * H, amount=1.0), ev(2, T - 3 * H, amount=2.0))
    card = history(ev(3, T - 5 * H))
    vals, times = values(card, customer)
    assert vals["customer_txn_count_24h"] == 2.0
    assert vals["customer_txn_amount_sum_24h"] == 3.0
    assert times["customer_txn_count_24h"] == T - 2 * H
    assert times["card_txn_count_24h"] == T - 5 * H
    assert times["amount_to_card_mean_7d"] == T - 5 * H  # its dependency's
    assert times["merchant_category_risk"] is None


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


GENERIC = Registry(
    parse_yaml(
        """
entities: [{name: card}]
feature_views:
  - name: stats
    entity: card
    source: card_transactions
    ttl: 2d
    transformations: [{name: amount_log, expression: log1p(amount)}]
    features:
      - {name: n_1h, aggregation: count, window: 1h}
      - {name: sum_24h, aggregation: sum, field: amount, window: 24h}
      - {name: mean_24h, aggregation: mean, field: amount, window: 24h}
      - {name: min_24h, aggregation: min, field: amount, window: 24h}
      - {name: max_24h, aggregation: max, field: amount, window: 24h}
      - {name: last_country, aggregation: last, field: country}
      - {name: merchants_24h, aggregation: distinct_count, field: merchant_id, window: 24h}
      - {name: log_sum_24h, aggregation: sum, field: amount_log, window: 24h}
feature_services: [{name: all, features: ["stats:*"]}]
"""
    )
)


def generic(events: list[HistoryEvent], at: int) -> tuple[dict[str, object], list[Status]]:
    view = GENERIC.view("stats")
    features = GENERIC.feature_service("all")
    h = EntityHistory(events)
    vector = compute_features(features, {"stats": h.before(at, 2 * DAY)}, {}, at, GENERIC)
    assert view.retention.days == 2
    return dict(zip([f.name for f in features], vector.values, strict=True)), vector.statuses


def test_generic_aggregations_last_and_transformations() -> None:
    events = [
        HistoryEvent("a", T - 2 * H, {"amount": 5.0, "country": "DE", "merchant_id": "m1", "amount_log": 1.0}),
        HistoryEvent("b", T - 30 * 60 * 1_000_000, {"amount": 1.0, "country": "FR", "merchant_id": "m2"}),
        HistoryEvent("c", T - 30 * H, {"amount": 100.0, "country": "US", "merchant_id": "m3"}),
    ]
    vals, statuses = generic(events, T)
    assert vals == {
        "n_1h": 1.0,
        "sum_24h": 6.0,
        "mean_24h": 3.0,
        "min_24h": 1.0,
        "max_24h": 5.0,
        "last_country": "FR",
        "merchants_24h": 2.0,
        "log_sum_24h": 1.0,
    }
    assert set(statuses) == {Status.PRESENT}


def test_ttl_expires_values_whose_newest_event_is_older_and_min_of_nothing_is_missing() -> None:
    events = [HistoryEvent("a", T - 3 * DAY, {"amount": 5.0, "country": "DE", "merchant_id": "m1"})]
    vals, statuses = generic(events, T)
    by_name = dict(zip(vals, statuses, strict=True))
    assert vals["last_country"] == "DE" and by_name["last_country"] is Status.EXPIRED  # value still computed
    assert vals["n_1h"] == 0.0 and by_name["n_1h"] is Status.EXPIRED
    assert vals["min_24h"] is None and by_name["min_24h"] is Status.MISSING
    _, fresh = generic(events, T - 2 * DAY + 1)  # within the 2 d ttl
    assert fresh[0] is Status.PRESENT


def naive_value(agg: str, present: list[HistoryEvent], numbers: list[float], name: str) -> object:
    if agg == "count":
        return float(len(present))
    if agg in ("sum", "mean"):
        total = math.fsum(numbers)
        return total if agg == "sum" else total / len(numbers) if numbers else 0.0
    if agg in ("min", "max"):
        return (min if agg == "min" else max)(numbers, default=None)
    if agg == "distinct_count":
        return float(len({e.values[name] for e in present}))
    return max(present, key=lambda e: (e.ts_us, e.event_id)).values[name] if present else None


def naive(features, history: EntityHistory, at: int, retention: int, ttl: int):  # type: ignore[no-untyped-def]
    """The contract of compute_features for one generic view, written the slow, obvious way."""
    kept = [e for e in history.events if e.ts_us < at]
    newest = max((e.ts_us for e in kept), default=None)
    kept = [e for e in kept if newest is not None and e.ts_us > newest - retention]
    out = []
    for f in features:
        spec = f.feature
        window = [e for e in kept if spec.window_us is None or e.ts_us > at - spec.window_us]
        present = [e for e in window if spec.field is None or e.values.get(spec.field) is not None]
        numbers = [float(v) for e in window if isinstance(v := e.values.get(spec.field or ""), int | float)]
        value = naive_value(spec.aggregation.value, present, numbers, spec.field or "")
        if newest is None or value is None:
            out.append((value, None, Status.MISSING))
        else:
            out.append((value, newest, Status.EXPIRED if at - newest > ttl else Status.PRESENT))
    return out


def test_the_plan_agrees_with_the_obvious_implementation_on_random_histories() -> None:
    features = GENERIC.feature_service("all")
    rng = random.Random(11)
    for trial in range(200):
        events = []
        for _ in range(rng.randrange(0, 40)):
            ts = T - rng.choice([rng.randrange(1, 3 * DAY), H, DAY, 2 * DAY, 0, -1])  # edges, ties, after t
            values: dict[str, object] = {"merchant_id": f"m{rng.randrange(4)}", "country": rng.choice(["DE", "FR"])}
            if rng.random() < 0.8:
                values["amount"] = rng.choice([rng.uniform(-5, 500), 3, True, "n/a"])
            if rng.random() < 0.2:
                del values["country"]
            events.append(HistoryEvent(f"e{rng.randrange(1000)}", ts, values))  # type: ignore[arg-type]
        history = EntityHistory(events)
        subset = rng.sample(features, rng.randrange(1, len(features) + 1))
        vector = compute_features(subset, {"stats": history.before(T, 2 * DAY)}, {}, T, GENERIC)
        got = list(zip(vector.values, vector.event_times_us, vector.statuses, strict=True))
        assert got == naive(subset, history, T, 2 * DAY, 2 * DAY), f"trial {trial}"


def test_on_demand_features_read_dependencies_that_are_not_selected() -> None:
    only = [REGISTRY.feature("amount_to_card_mean_7d")]
    card = history(ev(1, T - H, amount=9.0))
    vector = compute_features(only, {"card_txn_stats": card.before(T, WEEK)}, CONTEXT, T, REGISTRY)  # type: ignore[arg-type]
    assert vector.values == [99.0 / (9.0 + 1)]
    assert vector.event_times_us == [T - H] and vector.statuses == [Status.PRESENT]
