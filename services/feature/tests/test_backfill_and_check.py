"""Backfill of a new view from the lake (bounded batches, then the stream without gap or overlap), the
consistency check, TTL on online reads and no leakage of events 1 µs after a row's time."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.feature.v1 import feature_pb2
from aimesh.feature.definitions.specs import parse_yaml
from aimesh.feature.offline.backfill import backfill_view
from aimesh.feature.records import SourceRecord
from aimesh.feature.service import FeatureStore
from aimesh.feature.serving.check import run_check
from aimesh.feature.serving.retrieval import OnlineRetrieval

from .conftest import DAY_US, HOUR_US, T0, apply, txn, write_lake_files

NEW_VIEW = """
feature_views:
  - name: card_extremes
    entity: card
    source: card_transactions
    ttl: 2d
    transformations: [{name: big, expression: "1.0 if amount > 500 else 0.0"}]
    features:
      - {name: amount_min_24h, aggregation: min, field: amount, window: 24h}
      - {name: amount_max_24h, aggregation: max, field: amount, window: 24h}
      - {name: last_country, aggregation: last, field: country}
      - {name: big_count_3d, aggregation: sum, field: big, window: 3d}
      - {name: txn_count, aggregation: count}
feature_services: [{name: extremes, features: ["card_extremes:*"]}]
"""


def synthetic(n: int, seed: int) -> list[SourceRecord]:
    rng = random.Random(seed)
    return [
        txn(
            f"tx-{seed}-{i:06d}",
            T0 + rng.randrange(0, 4 * DAY_US),
            card=f"card-{rng.randrange(9)}",
            customer=f"cust-{rng.randrange(4)}",
            amount=round(rng.uniform(1, 900), 2),
            merchant=f"m{rng.randrange(7)}",
            country=rng.choice(["DE", "FR", "US"]),
        )
        for i in range(n)
    ]


def row(card: str, at_us: int) -> feature_pb2.EntityRow:
    ts = Timestamp()
    ts.FromMicroseconds(at_us)
    return feature_pb2.EntityRow(entity_ids={"card": card}, timestamp=ts)


async def test_backfill_then_stream_without_gap_or_overlap_and_check_passes(features: FeatureStore) -> None:
    old = sorted(synthetic(300, 1), key=lambda t: t.ts_us)
    await apply(features, 0, list(enumerate(old)))  # the stream before the view exists
    write_lake_files(features.lake_root, old)

    outcome = await features.apply(parse_yaml(NEW_VIEW), False)  # registers the view, backfills in the background
    overlap = old[-20:]  # redelivered after registration: also in the backfill
    await apply(features, 1, list(enumerate(overlap)))
    await features.wait_for_backfills()
    assert outcome.changes[0].action == "created"
    assert await features.definitions.views_needing_backfill(features.registry.current) == []

    new = [t for t in synthetic(100, 2) if t.ts_us > old[-1].ts_us]
    await apply(features, 0, [(len(old) + i, t) for i, t in enumerate(new)])
    write_lake_files(features.lake_root, new, first=len(old))

    report = await run_check(features, samples=20, seed=3)
    assert report.ok, report.mismatches[:5]
    assert report.compared["card_extremes"] == 9 * 5  # every card, five features

    after = max(t.ts_us for t in old + new) + 1
    response = await features.online.get(
        feature_pb2.GetOnlineFeaturesRequest(feature_service="extremes", entity_rows=[row("card-0", after)])
    )
    count = response.rows[0].values[4].value.double_value
    mine = [t.ts_us for t in old + new if t.entity_key == "card-0"]
    assert count == sum(1 for ts in mine if ts > max(mine) - 3 * DAY_US)  # windowless: the retention (3 d)


async def test_small_backfill_batches_give_the_same_state(features: FeatureStore) -> None:
    txns = synthetic(200, 5)
    write_lake_files(features.lake_root, txns)
    await features.apply(parse_yaml(NEW_VIEW), False)
    await features.wait_for_backfills()
    key = [("card_extremes", f"card-{i}") for i in range(9)]
    whole = await features.store.load(key)
    result = await features.backfill("card_extremes")
    assert (result.rows, result.written) == (200, 200)
    await backfill_view(
        features.registry.current,
        "card_extremes",
        features.store,
        features.definitions,
        features.lake_root,
        batch_rows=7,
    )
    again = await features.store.load(key)
    assert {k: sorted(e.event_id for e in h.events) for k, h in again.items()} == {
        k: sorted(e.event_id for e in h.events) for k, h in whole.items()
    }


async def test_ttl_is_enforced_on_online_reads(features: FeatureStore) -> None:
    await features.apply(parse_yaml(NEW_VIEW), False)
    await features.wait_for_backfills()
    await apply(features, 0, [(0, txn("a", T0, amount=7.0, country="FR"))])
    request = feature_pb2.GetOnlineFeaturesRequest(feature_service="extremes", entity_ids=["c1"])
    fresh = await OnlineRetrieval(features.store, features.registry, clock_us=lambda: T0 + DAY_US).get(request)
    stale = await OnlineRetrieval(features.store, features.registry, clock_us=lambda: T0 + 3 * DAY_US).get(request)
    names = list(fresh.feature_names)
    f = dict(zip(names, fresh.rows[0].values, strict=True))
    s = dict(zip(names, stale.rows[0].values, strict=True))
    assert f["last_country"].status == feature_pb2.FEATURE_STATUS_PRESENT
    assert s["last_country"].status == feature_pb2.FEATURE_STATUS_EXPIRED
    assert s["last_country"].value.string_value == "FR"  # the stale value is still there
    assert s["last_country"].event_time.ToMicroseconds() == T0
    assert s["amount_min_24h"].status == feature_pb2.FEATURE_STATUS_MISSING  # nothing in the window


async def test_no_leakage_of_events_one_microsecond_after_each_row(
    features: FeatureStore, write_lake: Callable[[Sequence[SourceRecord]], Path]
) -> None:
    times = [T0 + (i + 1) * HOUR_US for i in range(5)]
    base = [
        txn(f"b{i}-{j}", t - (j + 1) * 60_000_000, card=f"c{i}", amount=10.0 * (j + 1), merchant=f"m{j}")
        for i, t in enumerate(times)
        for j in range(i + 1)
    ]
    leaks = [
        txn(f"x{i}", t + 1, card=f"c{i}", amount=10_000.0, country="XX", merchant="leak") for i, t in enumerate(times)
    ]
    write_lake([*base, *leaks])
    rows = [row(f"c{i}", t) for i, t in enumerate(times)]
    await features.apply(parse_yaml(NEW_VIEW), False)
    names: list[str] = []
    values: list[feature_pb2.HistoricalFeatureRow] = []
    async for chunk in features.historical.stream(
        feature_pb2.GetHistoricalFeaturesRequest(
            features=["card_extremes:*", "card_txn_count_24h", "card_distinct_merchants_24h"], entity_rows=rows
        )
    ):
        names.extend(chunk.feature_names)
        values.extend(chunk.rows)
    assert len(values) == 5
    for i, r in enumerate(values):
        v = dict(zip(names, r.values, strict=True))
        assert v["amount_max_24h"].value.double_value == 10.0 * (i + 1)  # never the 10 000 one µs later
        assert v["last_country"].value.string_value == "DE"
        assert v["card_txn_count_24h"].value.double_value == i + 1
        assert v["card_distinct_merchants_24h"].value.double_value == i + 1
        assert v["big_count_3d"].value.double_value == 0.0
        assert v["txn_count"].event_time.ToMicroseconds() == times[i] - 60_000_000
