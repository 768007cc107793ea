"""``last_n`` (sequence) features: definitions and their wire form, the shared computation (window edges,
ties, the n cut, empty versus missing, element types), the list encoding, and the online store against the
lake (the same lists, redelivered and duplicated records counted once)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument
from aimesh.core.lake import replace_partition_range
from aimesh.core.signature import scalar
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import load_file, parse_yaml, to_yaml
from aimesh.feature.definitions.wire import repo_from_request, view_to_proto
from aimesh.feature.history import EMPTY_HISTORY, EntityHistory, HistoryEvent
from aimesh.feature.records import SourceRecord
from aimesh.feature.service import FeatureStore
from aimesh.feature.serving.aggregation import FeatureVector, Status, compute_features
from aimesh.feature.serving.rows import encode_feature_values

from .conftest import DAY_US, FIXTURES, HOUR_US, T0, apply

SEQUENCES_FILE = FIXTURES / "sequences.yaml"
REGISTRY = Registry(load_file(SEQUENCES_FILE))
VIEW = REGISTRY.views["visitor_history"]
FEATURES = REGISTRY.expand(["visitor_history:*"])
NAMES = [f.name for f in FEATURES]
SECOND = 1_000_000


def ev(i: int, ts: int, thing: str | None = None, price: float | str | None = 1.0, kind: str = "view") -> HistoryEvent:
    values: dict[str, float | str] = {"kind": kind, "category": f"cat-{i % 3}"}
    if thing is not None:
        values["thing_id"] = thing
    if price is not None:
        values["price"] = price
    return HistoryEvent(f"e{i:04d}", ts, values)


def at(history: EntityHistory, at_us: int) -> tuple[dict[str, object], dict[str, Status]]:
    vector = compute_features(FEATURES, {VIEW.name: history.before(at_us, VIEW.retention_us)}, {}, at_us, REGISTRY)
    return dict(zip(NAMES, vector.values, strict=True)), dict(zip(NAMES, vector.statuses, strict=True))


# --- definitions -------------------------------------------------------------------------------------------


def _view(feature: str) -> str:
    return f"feature_views: [{{name: v, entity: e, source: s, features: [{feature}]}}]"


def test_the_yaml_form_parses_validates_and_round_trips() -> None:
    spec = VIEW.features[0]
    assert (spec.aggregation, spec.field, spec.n, spec.window, spec.list_type) == (
        "last_n",
        "thing_id",
        20,
        timedelta(days=30),
        "string_list",
    )
    assert VIEW.features[1].list_type == "double_list"
    assert VIEW.retention == timedelta(days=30) and "thing_id" in VIEW.stored_fields
    assert parse_yaml(to_yaml(REGISTRY.repo)) == REGISTRY.repo


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ("{name: f, aggregation: last_n, n: 5, window: 1h}", "features[0]: aggregation last_n needs a field"),
        ("{name: f, aggregation: last_n, field: x, window: 1h}", "aggregation last_n needs n in [1, 1000], got None"),
        ("{name: f, aggregation: last_n, field: x, n: 0, window: 1h}", "needs n in [1, 1000], got 0"),
        ("{name: f, aggregation: last_n, field: x, n: 1001, window: 1h}", "needs n in [1, 1000], got 1001"),
        ("{name: f, aggregation: last_n, field: x, n: -3, window: 1h}", "needs n in [1, 1000], got -3"),
        ("{name: f, aggregation: last_n, field: x, n: 2.5, window: 1h}", "features[0].n: Input should be a valid"),
        ("{name: f, aggregation: last_n, field: x, n: 2, window: 1h, dtype: string}", "features[0].dtype: Input"),
        ("{name: f, aggregation: count, n: 2, window: 1h}", "aggregation count takes no n or dtype"),
        ("{name: f, aggregation: last, field: x, dtype: double_list}", "aggregation last takes no n or dtype"),
        ("{name: f, aggregation: last_n, field: x, n: 2, window: 0s}", "features[0].window: must be positive"),
        ("{name: f, aggregation: last, field: y}, {name: g, aggregation: last_n, field: x, n: 2}", "without a window"),
    ],
)
def test_invalid_last_n_definitions_name_the_path(feature: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_yaml(_view(feature))
    assert message in err.value.message


def test_an_on_demand_expression_cannot_read_a_list() -> None:
    asked = (
        "  - name: asked\n    source: request\n    features:\n"
        "      - {name: odd, aggregation: on_demand, expression: 'recent_things + 1'}\n"
    )
    text = SEQUENCES_FILE.read_text().replace("feature_services:", asked + "feature_services:")
    with pytest.raises(InvalidArgument, match=r"features\[0\]\.expression: 'recent_things' is the list feature"):
        parse_yaml(text)
    parse_yaml(text.replace("recent_things + 1", "count_24h + 1"))


def test_the_edges_of_n_are_accepted() -> None:
    for n in (1, 1000):
        assert parse_yaml(_view(f"{{name: f, aggregation: last_n, field: x, n: {n}, window: 1h}}"))


def test_the_wire_form_carries_n_and_the_list_type_and_comes_back_the_same() -> None:
    wire = view_to_proto(VIEW, 3)
    first, prices = wire.features[0], wire.features[1]
    assert (first.aggregation, first.n, first.dtype) == (
        feature_pb2.AGGREGATION_LAST_N,
        20,
        common_pb2.VALUE_TYPE_STRING_LIST,
    )
    assert (prices.n, prices.dtype) == (3, common_pb2.VALUE_TYPE_DOUBLE_LIST)
    assert wire.features[3].n == 0 and wire.features[3].dtype == common_pb2.VALUE_TYPE_DOUBLE  # count
    request = feature_pb2.ApplyDefinitionsRequest(
        entities=[feature_pb2.Entity(name="visitor", key="entity_key")], feature_views=[wire]
    )
    assert repo_from_request(request).feature_views == [VIEW]
    sent = request.feature_views[0].features
    del sent[1:]
    sent[0].dtype = common_pb2.VALUE_TYPE_UNSPECIFIED  # unset: the default, string_list
    assert repo_from_request(request).feature_views[0].features == [VIEW.features[0]]
    sent[0].dtype = common_pb2.VALUE_TYPE_DOUBLE
    with pytest.raises(InvalidArgument, match=r"feature_views\[0\]\.features\[0\]\.dtype: Input should be"):
        repo_from_request(request)
    sent[0].dtype = 77  # type: ignore[assignment]
    with pytest.raises(InvalidArgument, match=r"features\[0\]\.dtype: Input should be"):
        repo_from_request(request)
    sent[0].dtype = common_pb2.VALUE_TYPE_STRING_LIST
    sent[0].n = 0
    with pytest.raises(InvalidArgument, match="aggregation last_n needs n in"):
        repo_from_request(request)


async def test_changing_n_or_the_list_type_is_a_breaking_change(sql_engine: AsyncEngine, tmp_path: Path) -> None:
    store = FeatureStore(sql_engine, tmp_path / "lake")
    await store.start(SEQUENCES_FILE)
    try:
        text = SEQUENCES_FILE.read_text()
        for changed in (text.replace("n: 20,", "n: 10,"), text.replace(", dtype: double_list", "")):
            with pytest.raises(FailedPrecondition, match=r"feature recent_(things|prices_1h) changes its computation"):
                await store.apply(parse_yaml(changed), True)
        unchanged = await store.apply(parse_yaml(text), True)
        assert {c.action for c in unchanged.changes} == {"unchanged"}
    finally:
        await store.stop()


# --- the computation ---------------------------------------------------------------------------------------


def test_never_seen_is_missing_and_seen_but_not_in_the_window_is_an_empty_present_list() -> None:
    values, statuses = at(EMPTY_HISTORY, T0)
    assert values["recent_things"] is None and statuses["recent_things"] is Status.MISSING
    old = EntityHistory([ev(1, T0 - 2 * HOUR_US, "a", 4.0)])
    values, statuses = at(old, T0)
    assert values["recent_prices_1h"] == () and statuses["recent_prices_1h"] is Status.PRESENT  # 1h window
    assert values["recent_things"] == ("a",) and statuses["recent_things"] is Status.PRESENT
    values, statuses = at(old, T0 - 2 * HOUR_US)  # the lookup at the event's own time does not see it
    assert values["recent_things"] is None and statuses["recent_things"] is Status.MISSING


def test_window_edges_are_open_and_strictly_before_the_lookup() -> None:
    window = 3600 * SECOND
    history = EntityHistory(
        [
            ev(1, T0 - window, price=1.0),  # exactly the window's length before: out
            ev(2, T0 - window + 1, price=2.0),  # in
            ev(3, T0 - 1, price=3.0),  # in
            ev(4, T0, price=4.0),  # at the lookup time: out
        ]
    )
    values, _ = at(history, T0)
    assert values["recent_prices_1h"] == (2.0, 3.0)
    assert at(history, T0 + 1)[0]["recent_prices_1h"] == (3.0, 4.0)  # event 2 is now on the edge: out


def test_the_newest_n_values_oldest_first_ties_by_event_id_whatever_the_order_given() -> None:
    events = [ev(i, T0 - HOUR_US + i * SECOND, f"t{i}") for i in range(30)]
    events += [ev(100, T0 - 10 * SECOND, "tie-b"), ev(99, T0 - 10 * SECOND, "tie-a")]  # e0099 sorts first
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        values, _ = at(EntityHistory(shuffled), T0)
        assert values["recent_things"] == (*(f"t{i}" for i in range(12, 30)), "tie-a", "tie-b")
        assert len(values["recent_things"]) == 20  # type: ignore[arg-type]


def test_events_without_the_field_or_of_another_type_are_passed_over() -> None:
    history = EntityHistory(
        [
            ev(1, T0 - 50 * SECOND, "a", price=7),
            ev(2, T0 - 40 * SECOND, None, price="n/a"),  # no thing_id; a price that is no number
            ev(3, T0 - 30 * SECOND, "c", price=True),
            ev(4, T0 - 20 * SECOND, "d", price=None),
            ev(5, T0 - 10 * SECOND, "e", price=2.5, kind="buy"),
        ]
    )
    values, _ = at(history, T0)
    assert values["recent_things"] == ("a", "c", "d", "e")
    assert values["recent_prices_1h"] == (7.0, 1.0, 2.5)  # the newest 3 numbers, as doubles
    assert all(type(v) is float for v in values["recent_prices_1h"])  # type: ignore[union-attr]
    assert values["recent_kinds"] == ("view", "buy")
    numbers = EntityHistory([HistoryEvent("x", T0 - 1, {"thing_id": 42}), HistoryEvent("y", T0 - 1, {"thing_id": 1.5})])
    assert at(numbers, T0)[0]["recent_things"] == ("42", "1.5")  # string_list: values as text


def test_the_usual_aggregates_of_a_string_keyed_entity_sit_next_to_the_lists() -> None:
    history = EntityHistory([ev(i, T0 - (10 - i) * HOUR_US, f"t{i}") for i in range(10)])
    values, statuses = at(history, T0)
    assert values["count_24h"] == 10.0 and values["count_7d"] == 10.0
    assert values["seconds_since_last"] == 3600.0 and values["distinct_categories_7d"] == 3.0
    assert set(statuses.values()) == {Status.PRESENT}


def test_ttl_expiry_applies_to_lists_as_to_any_value() -> None:
    repo = parse_yaml(
        "entities: [{name: e}]\nfeature_views: [{name: v, entity: e, source: s, ttl: 1h, features: "
        "[{name: f, aggregation: last_n, field: x, n: 2, window: 1d}]}]"
    )
    registry = Registry(repo)
    view = registry.views["v"]
    history = EntityHistory([HistoryEvent("a", T0 - 2 * HOUR_US, {"x": "a"})])
    vector = compute_features(registry.expand(["v:f"]), {"v": history.before(T0, view.retention_us)}, {}, T0, registry)
    assert (vector.values, vector.statuses, vector.event_times_us) == ([("a",)], [Status.EXPIRED], [T0 - 2 * HOUR_US])


# --- the wire encoding ---------------------------------------------------------------------------------------


def test_lists_are_encoded_as_the_protobuf_api_builds_them() -> None:
    lists: list[tuple[str | float, ...] | None] = [(), ("a",), ("ü" * 200, "", "x"), (1.5, -0.0, float("inf")), None]
    lists.append(tuple(f"t{i}" for i in range(1000)))
    vector = FeatureVector([*lists, 2.0], [5, 6, None, 2**40, None, 7, 8], [Status.PRESENT] * 7)
    row = feature_pb2.OnlineFeatureRow()
    row.MergeFromString(encode_feature_values(2, vector))
    expected = feature_pb2.OnlineFeatureRow()
    for value, at_us in zip(vector.values, vector.event_times_us, strict=True):
        fv = expected.values.add(status=feature_pb2.FEATURE_STATUS_PRESENT)
        if isinstance(value, tuple):
            fv.value.list_value.SetInParent()
            for item in value:
                fv.value.list_value.values.add(**{"string_value" if isinstance(item, str) else "double_value": item})
        elif value is not None:
            fv.value.double_value = value
        if at_us is not None:
            fv.event_time.FromMicroseconds(at_us)
    assert row == expected
    assert row.values[0].value.WhichOneof("kind") == "list_value"  # an empty list is a value, not null
    assert [scalar(v.value) for v in row.values[:4]] == [(), ("a",), ("ü" * 200, "", "x"), (1.5, -0.0, float("inf"))]


# --- the online store against the lake ---------------------------------------------------------------------


def interactions(n: int, seed: int = 3) -> list[SourceRecord]:
    """Interactions of 12 visitors with 40 things over 3 days; many share their event time (ties)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        visitor, thing = f"v-{rng.randrange(12):02d}", f"t-{rng.randrange(40):03d}"
        ts = T0 - 3 * DAY_US + rng.randrange(3 * 24 * 60) * 60 * SECOND  # whole minutes: ties are common
        attributes = {
            "visitor_id": visitor,
            "thing_id": thing,
            "category": f"cat-{rng.randrange(5)}",
            "kind": rng.choice(["view", "view", "cart", "buy"]),
            "price": round(rng.uniform(1, 100), 2),
        }
        out.append(SourceRecord(f"ix-{rng.randrange(10**9):09d}-{i}", "interactions", visitor, ts, attributes))
    return out


def write_interactions(root: Path, records: Sequence[SourceRecord]) -> None:
    """The records in the lake layout ingest writes (one file per event date)."""
    by_day: dict[date, list[SourceRecord]] = defaultdict(list)
    for r in records:
        by_day[datetime.fromtimestamp(r.ts_us / 1e6, UTC).date()].append(r)

    def table(rows: list[SourceRecord]) -> pa.Table:
        ts = pa.array([r.ts_us for r in rows], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        columns: dict[str, pa.Array] = {
            "event_id": pa.array([r.event_id for r in rows], pa.string()),
            "entity_key": pa.array([r.entity_key for r in rows], pa.string()),
            "event_time": ts,
            "ingest_time": ts,
            "price": pa.array([r.attributes["price"] for r in rows], pa.float64()),
        }
        for name in ("visitor_id", "thing_id", "category", "kind"):
            columns[name] = pa.array([r.attributes[name] for r in rows], pa.string())
        return pa.table(columns)

    tables = {day: table(rows) for day, rows in by_day.items()}
    replace_partition_range(root, "interactions", partition=0, first=0, last=len(records) - 1, tables_by_day=tables)


def expected_things(records: Sequence[SourceRecord], visitor: str, at_us: int) -> tuple[str, ...] | None:
    """The obvious implementation of ``recent_things`` (n 20, window 30d)."""
    mine = sorted((r.ts_us, r.event_id, str(r.attributes["thing_id"])) for r in records if r.entity_key == visitor)
    seen = [m for m in mine if m[0] < at_us]
    if not seen:
        return None
    return tuple(thing for ts, _, thing in seen if ts > at_us - 30 * DAY_US)[-20:]


def lookup_rows(records: Sequence[SourceRecord], instants: Sequence[int]) -> list[feature_pb2.EntityRow]:
    rows = []
    for visitor in sorted({r.entity_key for r in records} | {"v-never"}):
        for at_us in instants:
            stamp = Timestamp()
            stamp.FromMicroseconds(at_us)
            rows.append(feature_pb2.EntityRow(entity_ids={"visitor": visitor, "thing": "t-001"}, timestamp=stamp))
    return rows


async def test_online_lists_equal_the_lake_and_the_obvious_implementation_and_duplicates_count_once(
    sql_engine: AsyncEngine, tmp_path: Path
) -> None:
    store = FeatureStore(sql_engine, tmp_path / "lake", allowed_lateness=timedelta(days=30))
    await store.start(SEQUENCES_FILE)
    try:
        records = interactions(600)
        shuffled = records[:]
        random.Random(2).shuffle(shuffled)  # the online store gets them out of order
        for start in range(0, len(shuffled), 100):
            await apply(store, 0, [(start + i, r) for i, r in enumerate(shuffled[start : start + 100])])
        write_interactions(tmp_path / "lake", records)
        newest = max(r.ts_us for r in records)
        instants = [newest + 1, newest + HOUR_US, newest + 40 * DAY_US]
        request = feature_pb2.GetOnlineFeaturesRequest(
            feature_service="next_thing_v1", entity_rows=lookup_rows(records, instants)
        )
        online = await store.online.get(request)
        historical = [
            r
            async for chunk in store.historical.stream(
                feature_pb2.GetHistoricalFeaturesRequest(
                    feature_service="next_thing_v1", entity_rows=request.entity_rows
                )
            )
            for r in chunk.rows
        ]
        historical.sort(key=lambda r: r.row_index)
        assert [list(r.values) for r in online.rows] == [list(r.values) for r in historical]
        for row, asked in zip(online.rows, request.entity_rows, strict=True):
            visitor, at_us = asked.entity_ids["visitor"], asked.timestamp.ToMicroseconds()
            things = row.values[0]
            want = expected_things(records, visitor, at_us)
            if want is None:
                assert things.status == feature_pb2.FEATURE_STATUS_MISSING and not things.value.WhichOneof("kind")
            else:
                assert things.status == feature_pb2.FEATURE_STATUS_PRESENT and scalar(things.value) == want
        assert any(len(scalar(r.values[0].value) or ()) == 20 for r in online.rows)  # type: ignore[arg-type]
        assert any(scalar(r.values[0].value) == () for r in online.rows)  # 40 days on: seen, nothing in the window

        redelivered = await apply(store, 0, [(i, r) for i, r in enumerate(shuffled[:100])])  # offsets applied
        duplicated = await apply(store, 1, [(i, r) for i, r in enumerate(records[:300])])  # same ids, new offsets
        assert (redelivered.applied, redelivered.skipped, duplicated.applied) == (0, 100, 300)
        assert await store.online.get(request) == online
    finally:
        await store.stop()


async def test_a_point_in_time_row_never_sees_its_own_event(sql_engine: AsyncEngine, tmp_path: Path) -> None:
    """A training row of an interaction, as of the interaction's own time: its thing is not in its history."""
    store = FeatureStore(sql_engine, tmp_path / "lake")
    await store.start(SEQUENCES_FILE)
    try:
        records = interactions(200, seed=8)
        write_interactions(tmp_path / "lake", records)
        rows = []
        for r in records:
            stamp = Timestamp()
            stamp.FromMicroseconds(r.ts_us)
            rows.append(feature_pb2.EntityRow(entity_ids={"visitor": r.entity_key}, timestamp=stamp))
        answers = [
            a
            async for chunk in store.historical.stream(
                feature_pb2.GetHistoricalFeaturesRequest(features=["visitor_history:recent_things"], entity_rows=rows)
            )
            for a in chunk.rows
        ]
        answers.sort(key=lambda a: a.row_index)
        for r, answer in zip(records, answers, strict=True):
            assert scalar(answer.values[0].value) == expected_things(records, r.entity_key, r.ts_us) or (
                answer.values[0].status == feature_pb2.FEATURE_STATUS_MISSING
                and expected_things(records, r.entity_key, r.ts_us) is None
            )
    finally:
        await store.stop()
