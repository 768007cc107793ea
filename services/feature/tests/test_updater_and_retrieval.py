"""The consumer's batch handler (poison, ignored sources, redelivery) and both retrieval paths in-process:
the online store and the lake answer the same values for the same rows."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.errors import AimeshError
from aimesh.core.events import Event
from aimesh.feature.records import SourceRecord
from aimesh.feature.service import FeatureStore
from aimesh.feature.serving.retrieval import HistoricalRetrieval, OnlineRetrieval

from .conftest import DAY_US, FRAUD_V1_FEATURES, HOUR_US, T0, apply, txn


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def send(self, event: Event, reason_code: str, message: str) -> None:
        self.sent.append((event.offset, reason_code))


def record(t: SourceRecord, source: str = "card_transactions") -> events_pb2.CanonicalRecord:
    r = events_pb2.CanonicalRecord(event_id=t.event_id, source=source, entity_key=t.entity_key, entity_type="card")
    r.event_time.FromMicroseconds(t.ts_us)
    for name, value in t.attributes.items():
        if isinstance(value, float):
            r.attributes[name].double_value = value
        else:
            r.attributes[name].string_value = str(value)
    return r


def event(offset: int, payload: bytes, partition: int = 0) -> Event:
    return Event("records", partition, offset, b"k", payload, (), 0)


async def test_updater_applies_ignores_dead_letters_and_skips_redeliveries(features: FeatureStore) -> None:
    dlq = FakeDeadLetters()
    updater = features.updater(dlq)
    no_customer = record(txn("x", T0))
    del no_customer.attributes["customer_id"]
    events = [
        event(0, record(txn("a", T0)).SerializeToString()),
        event(1, b"\xff not a protobuf"),
        event(2, record(txn("cb", T0), source="chargebacks").SerializeToString()),
        event(3, no_customer.SerializeToString()),
        event(4, record(txn("b", T0 + 1)).SerializeToString()),
    ]
    result = await updater.apply(events)
    assert (result.applied, result.skipped) == (2, 0)
    assert dlq.sent == [(1, "DECODE_ERROR"), (3, "MISSING_FIELD")]
    again = await updater.apply(events)
    assert (again.applied, again.skipped) == (0, 5)
    assert dlq.sent == [(1, "DECODE_ERROR"), (3, "MISSING_FIELD")]  # not dead-lettered twice
    assert await features.store.offsets() == {("records", 0): 5}


def context_row(t: SourceRecord, at_us: int, *, category: str = "gaming") -> feature_pb2.EntityRow:
    ts = Timestamp()
    ts.FromMicroseconds(at_us)
    a = t.attributes
    ctx = {
        "amount": common_pb2.Value(double_value=float(a["amount"])),
        "merchant_id": common_pb2.Value(string_value=str(a["merchant_id"])),
        "merchant_category": common_pb2.Value(string_value=category),
        "country": common_pb2.Value(string_value=str(a["country"])),
        "device_id": common_pb2.Value(string_value=str(a["device_id"])),
    }
    return feature_pb2.EntityRow(
        timestamp=ts, entity_ids={"card": t.entity_key, "customer": str(a["customer_id"])}, request_context=ctx
    )


def synthetic(n: int, seed: int = 3) -> list[SourceRecord]:
    rng = random.Random(seed)
    return [
        txn(
            f"tx-{i:010d}",
            T0 + rng.randrange(0, 10 * 24 * HOUR_US),
            card=f"card-{rng.randrange(12)}",
            customer=f"cust-{rng.randrange(6)}",
            amount=round(rng.uniform(1, 900), 2),
            merchant=f"m{rng.randrange(9)}",
            country=rng.choice(["DE", "FR", "US"]),
            device=f"dev-{rng.randrange(15)}",
        )
        for i in range(n)
    ]


async def test_online_equals_historical_for_rows_after_the_last_event(
    features: FeatureStore, write_lake: Callable[[Sequence[SourceRecord]], Path]
) -> None:
    txns = synthetic(400)
    shuffled = txns[:]
    random.Random(1).shuffle(shuffled)  # the online store gets them out of order
    for start in range(0, len(shuffled), 50):
        await apply(features, 0, [(start + i, t) for i, t in enumerate(shuffled[start : start + 50])])
    lake_root = write_lake(txns)
    after = max(t.ts_us for t in txns) + 1
    probes = [txn("probe", 0, card=f"card-{i}", customer=f"cust-{i % 7}", amount=50.0 + i) for i in range(13)]
    rows = [context_row(p, after + i * 1_000_000) for i, p in enumerate(probes)]

    online = await features.online.get(
        feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v1", entity_rows=rows)
    )
    chunks = [
        c
        async for c in HistoricalRetrieval(lake_root, features.registry, chunk_rows=5, group_entities=7).stream(
            feature_pb2.GetHistoricalFeaturesRequest(feature_service="fraud_v1", entity_rows=rows)
        )
    ]
    assert list(online.feature_names) == list(FRAUD_V1_FEATURES) == list(chunks[0].feature_names)
    assert all(0 < len(c.rows) <= 5 for c in chunks) and not any(c.feature_names for c in chunks[1:])
    historical = sorted((r for c in chunks for r in c.rows), key=lambda r: r.row_index)
    assert [r.row_index for r in historical] == list(range(13))  # each row once, grouped by entity
    for on, off in zip(online.rows, historical, strict=True):
        assert list(on.values) == list(off.values)
    missing = online.rows[12].values[0]  # card-12 never paid
    assert missing.status == feature_pb2.FEATURE_STATUS_MISSING and missing.value.double_value == 0.0
    assert online.rows[0].values[0].status == feature_pb2.FEATURE_STATUS_PRESENT


async def test_historical_answers_each_group_before_reading_the_next(
    features: FeatureStore, write_lake: Callable[[Sequence[SourceRecord]], Path]
) -> None:
    lake_root = write_lake(synthetic(60))
    rows = [context_row(txn("probe", 0, card=f"card-{i % 3}", customer="cust-0"), T0 + DAY_US + i) for i in range(10)]
    retrieval = HistoricalRetrieval(lake_root, features.registry, chunk_rows=100, group_rows=4)
    request = feature_pb2.GetHistoricalFeaturesRequest(feature_service="fraud_v1", entity_rows=rows)
    sizes = [[r.row_index for r in c.rows] async for c in retrieval.stream(request)]
    assert [len(s) for s in sizes] == [4, 4, 2]  # one message per group of at most 4 rows
    assert all(s == sorted(s) for s in sizes) and sorted(i for s in sizes for i in s) == list(range(10))


async def test_historical_uses_only_events_strictly_before_each_row(
    features: FeatureStore, tmp_path: Path, write_lake: Callable[[Sequence[SourceRecord]], Path]
) -> None:
    txns = [
        txn("a", T0, amount=1.0),
        txn("b", T0 + HOUR_US // 2, amount=2.0, country="FR"),
        txn("c", T0 + HOUR_US, amount=4.0),
    ]
    lake_root = write_lake(txns)
    rows = [context_row(t, t.ts_us) for t in txns]  # each payment as of its own time
    chunks = [
        c
        async for c in HistoricalRetrieval(lake_root, features.registry).stream(
            feature_pb2.GetHistoricalFeaturesRequest(feature_service="fraud_v1", entity_rows=rows)
        )
    ]
    by_name = [
        dict(zip(FRAUD_V1_FEATURES, (v.value.double_value for v in r.values), strict=True)) for r in chunks[0].rows
    ]
    assert [r["card_txn_count_1h"] for r in by_name] == [0.0, 1.0, 1.0]  # a is exactly 1 h before c
    assert [r["card_txn_amount_sum_24h"] for r in by_name] == [0.0, 1.0, 3.0]
    assert [r["card_country_is_new"] for r in by_name] == [1.0, 1.0, 0.0]
    assert [r["card_seconds_since_prev"] for r in by_name] == [30 * 86400.0, 1800.0, 1800.0]
    empty = [
        c
        async for c in HistoricalRetrieval(tmp_path / "no-lake", features.registry).stream(
            feature_pb2.GetHistoricalFeaturesRequest(feature_service="fraud_v1", entity_rows=rows[:1])
        )
    ]
    assert empty[0].rows[0].values[0].status == feature_pb2.FEATURE_STATUS_MISSING


@pytest.mark.parametrize(
    ("request_", "code", "text"),
    [
        (
            feature_pb2.GetOnlineFeaturesRequest(feature_service="nope", entity_ids=["c"]),
            grpc.StatusCode.NOT_FOUND,
            "fraud_v1",
        ),
        (
            feature_pb2.GetOnlineFeaturesRequest(features=["card_txn_count_2h"], entity_ids=["c"]),
            grpc.StatusCode.NOT_FOUND,
            "card_txn_stats:card_txn_count_1h",
        ),
        (feature_pb2.GetOnlineFeaturesRequest(entity_ids=["c"]), grpc.StatusCode.INVALID_ARGUMENT, "exactly one"),
        (
            feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v1", entity_ids=["c"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "'customer'",
        ),
        (
            feature_pb2.GetOnlineFeaturesRequest(
                feature_service="fraud_v1", entity_rows=[feature_pb2.EntityRow(entity_ids={"card": "c"})]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "entity_rows[0]: entity id 'customer' missing",
        ),
        (
            feature_pb2.GetOnlineFeaturesRequest(
                feature_service="fraud_v1",
                entity_rows=[feature_pb2.EntityRow(entity_ids={"card": "c", "customer": "u"})],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "request_context field 'amount' missing",
        ),
        (
            feature_pb2.GetOnlineFeaturesRequest(features=["card_txn_count_1h"], entity_ids=["c"] * 1001),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "at most 1000 rows",
        ),
    ],
)
async def test_online_request_errors(
    features: FeatureStore, request_: feature_pb2.GetOnlineFeaturesRequest, code: grpc.StatusCode, text: str
) -> None:
    with pytest.raises(AimeshError) as err:
        await features.online.get(request_)
    assert err.value.code == code
    assert text in err.value.message


async def test_single_entity_shorthand_serves_card_features(features: FeatureStore) -> None:
    await apply(features, 0, [(0, txn("a", T0, amount=7.0))])
    response = await OnlineRetrieval(features.store, features.registry, clock_us=lambda: T0 + 60_000_000).get(
        feature_pb2.GetOnlineFeaturesRequest(
            features=["card_txn_stats:card_txn_amount_sum_1h", "card_txn_count_24h"], entity_ids=["c1", "c2"]
        )
    )
    assert list(response.feature_names) == ["card_txn_amount_sum_1h", "card_txn_count_24h"]
    assert [r.entity_id for r in response.rows] == ["c1", "c2"]
    assert [v.value.double_value for v in response.rows[0].values] == [7.0, 1.0]
    assert response.rows[0].values[0].event_time.ToMicroseconds() == T0
    assert response.rows[1].values[0].status == feature_pb2.FEATURE_STATUS_MISSING


async def test_present_values_carry_the_time_of_the_newest_event_behind_them(
    features: FeatureStore, write_lake: Callable[[Sequence[SourceRecord]], Path]
) -> None:
    txns = [
        txn("a", T0, card="c1", customer="u1"),
        txn("b", T0 + HOUR_US, card="c1", customer="u2"),
        txn("c", T0 + 2 * HOUR_US, card="c9", customer="u1"),
    ]
    await apply(features, 0, list(enumerate(txns)))
    lake_root = write_lake(txns)
    at = T0 + 5 * HOUR_US
    rows = [context_row(txn("probe", 0, card="c1", customer="u1"), at)]
    online = await features.online.get(
        feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v1", entity_rows=rows)
    )
    offline = [
        r
        async for c in HistoricalRetrieval(lake_root, features.registry).stream(
            feature_pb2.GetHistoricalFeaturesRequest(feature_service="fraud_v1", entity_rows=rows)
        )
        for r in c.rows
    ]
    assert list(online.rows[0].values) == list(offline[0].values)
    values = dict(zip(online.feature_names, online.rows[0].values, strict=True))
    assert {v.status for v in values.values()} == {feature_pb2.FEATURE_STATUS_PRESENT}
    times = {name: v.event_time.ToMicroseconds() if v.HasField("event_time") else None for name, v in values.items()}
    for name in FRAUD_V1_FEATURES:
        if name.startswith("card_"):
            assert times[name] == T0 + HOUR_US, name  # the card's newest event, also for a window it left
        elif name.startswith("customer_"):
            assert times[name] == T0 + 2 * HOUR_US, name
    assert times["amount_to_card_mean_7d"] == T0 + HOUR_US  # its stream dependency's
    assert times["amount"] is None and times["merchant_category_risk"] is None  # the request alone: no event
    freshness = at - max(t for t in times.values() if t is not None)  # as inference computes it
    assert freshness == 3 * HOUR_US
