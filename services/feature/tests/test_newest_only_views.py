"""Views that keep only each entity's newest event: features that need no history (``last``,
``seconds_since_last``, ``is_new``) in a view with neither a ttl nor a windowed feature. They serve the
newest event's values, online and offline alike, on every online store backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import parse_yaml
from aimesh.feature.history import EntityHistory, HistoryEvent
from aimesh.feature.records import SourceRecord, view_event
from aimesh.feature.service import FeatureStore
from aimesh.feature.serving.aggregation import Status, compute_features
from aimesh.feature.serving.check import run_check

from .conftest import HOUR_US, T0, apply, txn
from .online_backends import OnlineBackend

LATEST = """
entities: [{name: card}]
feature_views:
  - name: card_latest
    entity: card
    source: card_transactions
    features:
      - {name: last_country, aggregation: last, field: country}
      - {name: last_amount, aggregation: last, field: amount}
      - {name: last_device, aggregation: last, field: device_id}
feature_services: [{name: latest, features: ["card_latest:*"]}]
"""
REGISTRY = Registry(parse_yaml(LATEST))
VIEW = REGISTRY.view("card_latest")
FEATURES = REGISTRY.feature_service("latest")


def test_a_view_without_ttl_or_windows_keeps_the_newest_event_and_serves_it() -> None:
    events = [
        HistoryEvent("a", T0, {"country": "DE", "amount": 1.0, "device_id": "d1"}),
        HistoryEvent("b", T0 + HOUR_US, {"country": "FR", "amount": 2.0, "device_id": "d2"}),
    ]
    at = T0 + 2 * HOUR_US
    vector = compute_features(
        FEATURES, {VIEW.name: EntityHistory(events).before(at, VIEW.retention_us)}, {}, at, REGISTRY
    )
    assert vector.values == ["FR", 2.0, "d2"]
    assert vector.statuses == [Status.PRESENT] * 3
    assert vector.event_times_us == [T0 + HOUR_US] * 3
    early = compute_features(
        FEATURES, {VIEW.name: EntityHistory(events).before(T0 + 1, VIEW.retention_us)}, {}, T0 + 1, REGISTRY
    )
    assert early.values == ["DE", 1.0, "d1"] and early.statuses == [Status.PRESENT] * 3


def test_events_at_the_newest_time_are_all_kept_and_the_last_by_event_id_wins() -> None:
    events = [
        HistoryEvent("a", T0, {"country": "DE"}),
        HistoryEvent("c", T0 + HOUR_US, {"country": "US"}),
        HistoryEvent("b", T0 + HOUR_US, {"country": "FR"}),
    ]
    cut = EntityHistory(events).before(T0 + 2 * HOUR_US, VIEW.retention_us)
    assert [e.event_id for e in cut.events] == ["b", "c"]


async def test_the_online_store_keeps_only_the_newest_event(online: OnlineBackend) -> None:
    records = [txn("a", T0, country="DE"), txn("c", T0 + 2 * HOUR_US, country="US"), txn("b", T0 + HOUR_US)]
    batch = [(i, [view_event(VIEW, REGISTRY.entities["card"], r)]) for i, r in enumerate(records)]
    await online.store.apply("records", 0, batch, {VIEW.name: VIEW.retention_us})
    history = (await online.store.load([(VIEW.name, "c1")]))[(VIEW.name, "c1")]
    assert [(e.event_id, e.values.get("country")) for e in history.events] == [("c", "US")]


def lookup(card: str, at_us: int) -> feature_pb2.EntityRow:
    ts = Timestamp()
    ts.FromMicroseconds(at_us)
    return feature_pb2.EntityRow(entity_ids={"card": card}, timestamp=ts)


async def test_online_and_offline_serve_the_newest_event_identically(
    features: FeatureStore, write_lake: Callable[[Sequence[SourceRecord]], Path]
) -> None:
    await features.apply(parse_yaml(LATEST), False)
    await features.wait_for_backfills()
    txns = [
        txn("a", T0, card="c1", country="DE", amount=5.0, device="d1"),
        txn("b", T0 + HOUR_US, card="c1", country="FR", amount=7.5, device="d9"),
        txn("c", T0 + HOUR_US // 2, card="c2", country="US", amount=1.0),
    ]
    await apply(features, 0, list(enumerate(txns)))
    write_lake(txns)
    after = T0 + 3 * HOUR_US
    rows = [lookup("c1", after), lookup("c2", after), lookup("c3", after)]
    online = await features.online.get(feature_pb2.GetOnlineFeaturesRequest(feature_service="latest", entity_rows=rows))
    offline = [
        r
        async for chunk in features.historical.stream(
            feature_pb2.GetHistoricalFeaturesRequest(feature_service="latest", entity_rows=rows)
        )
        for r in chunk.rows
    ]
    for on, off in zip(online.rows, sorted(offline, key=lambda r: r.row_index), strict=True):
        assert list(on.values) == list(off.values)
    c1 = online.rows[0].values
    assert [v.value for v in c1] == [
        common_pb2.Value(string_value="FR"),
        common_pb2.Value(double_value=7.5),
        common_pb2.Value(string_value="d9"),
    ]
    assert {v.status for v in c1} == {feature_pb2.FEATURE_STATUS_PRESENT}
    assert {v.event_time.ToMicroseconds() for v in c1} == {T0 + HOUR_US}
    assert online.rows[1].values[0].value.string_value == "US"
    assert {v.status for v in online.rows[2].values} == {feature_pb2.FEATURE_STATUS_MISSING}
    report = await run_check(features, samples=10, seed=1)
    assert report.ok, report.mismatches[:5]
    assert report.compared["card_latest"] == 2 * 3
