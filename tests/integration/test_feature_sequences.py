"""Sequence (``last_n``) features against the real stack: definitions applied with ``aimesh feature apply``,
canonical records through real Kafka into the online store on PostgreSQL and on Redis, and the lake.

Shows that GetOnlineFeatures answers the same ``Value(list_value=...)`` as GetHistoricalFeatures for the
same rows (after the newest event and as of earlier instants: point in time), that both equal the obvious
implementation, and that redelivered and re-sent records add no list entry. The usual aggregates of a
string-keyed ``user`` entity and of an attribute-keyed ``item`` entity are served next to the lists.

Measures GetOnlineFeatures latency for one row with a 20-item list (prints it with ``-s``).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from redis.asyncio import Redis
from typer.testing import CliRunner

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.channels import open_caller_channel
from aimesh.core.events import Event
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.lake import replace_partition_range
from aimesh.core.signature import scalar
from aimesh.core.testing import run_until
from aimesh.devstack import cli
from aimesh.feature.access import ACCESS
from aimesh.feature.service import FeatureStore
from aimesh.feature.settings import FeatureSettings

pytestmark = pytest.mark.integration

SOURCE = "retail_interactions"
DEFINITIONS = """
entities:
  - {name: user, key: entity_key}
  - {name: item, key: item_id}
feature_views:
  - name: user_history
    entity: user
    source: retail_interactions
    features:
      - {name: user_recent_items, aggregation: last_n, field: item_id, n: 20, window: 30d}
      - {name: user_recent_prices_6h, aggregation: last_n, field: price, n: 5, window: 6h, dtype: double_list}
      - {name: user_count_24h, aggregation: count, window: 24h}
      - {name: user_count_7d, aggregation: count, window: 7d}
      - {name: user_seconds_since_last, aggregation: seconds_since_last, window: 30d}
      - {name: user_distinct_categories_7d, aggregation: distinct_count, field: category, window: 7d}
  - name: item_stats
    entity: item
    source: retail_interactions
    features:
      - {name: item_count_24h, aggregation: count, window: 24h}
      - {name: item_count_7d, aggregation: count, window: 7d}
feature_services:
  - name: next_item_v1
    features: ["user_history:user_recent_items", "user_history:user_recent_prices_6h", "user_history:user_count_24h",
               "user_history:user_count_7d", "user_history:user_seconds_since_last",
               "user_history:user_distinct_categories_7d", "item_stats:item_count_24h", "item_stats:item_count_7d"]
"""
N_INTERACTIONS = 1500
MINUTE_US = 60_000_000
DAY_US = 24 * 60 * MINUTE_US


def interactions(now_us: int) -> list[dict[str, Any]]:
    """60 users, 200 items, 4 days, whole minutes (many events share their time: ties by event id)."""
    rng = random.Random(17)
    start = now_us - 4 * DAY_US
    out = []
    for i in range(N_INTERACTIONS):
        item = rng.randrange(200)
        out.append(
            {
                "interaction_id": f"ix-{rng.randrange(10**8):08d}-{i}",
                "user_id": f"user-{rng.randrange(60):03d}",
                "item_id": f"item-{item:04d}",
                "category": f"cat-{item % 12}",
                "price": round(5 + item * 0.37, 2),
                "event_type": rng.choice(["view", "view", "view", "add_to_cart", "purchase"]),
                "ts_us": start + rng.randrange(4 * 24 * 60 - 60) * MINUTE_US,
            }
        )
    return out


def canonical(x: dict[str, Any]) -> events_pb2.CanonicalRecord:
    r = events_pb2.CanonicalRecord(
        event_id=x["interaction_id"], source=SOURCE, entity_key=x["user_id"], entity_type="user"
    )
    r.event_time.FromMicroseconds(x["ts_us"])
    r.ingest_time.GetCurrentTime()
    for name in ("user_id", "item_id", "category", "event_type"):
        r.attributes[name].string_value = x[name]
    r.attributes["price"].double_value = x["price"]
    return r


def write_lake(root: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The interactions in the lake layout ingest writes, one file per event date."""
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for x in rows:
        by_day[datetime.fromtimestamp(x["ts_us"] / 1e6, UTC).date()].append(x)

    def table(part: list[dict[str, Any]]) -> pa.Table:
        ts = pa.array([x["ts_us"] for x in part], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        columns: dict[str, pa.Array] = {
            "event_id": pa.array([x["interaction_id"] for x in part], pa.string()),
            "entity_key": pa.array([x["user_id"] for x in part], pa.string()),
            "event_time": ts,
            "ingest_time": ts,
            "price": pa.array([x["price"] for x in part], pa.float64()),
        }
        for name in ("user_id", "item_id", "category", "event_type"):
            columns[name] = pa.array([x[name] for x in part], pa.string())
        return pa.table(columns)

    tables = {day: table(part) for day, part in by_day.items()}
    replace_partition_range(root, SOURCE, partition=0, first=0, last=len(rows) - 1, tables_by_day=tables)


def expected_items(rows: Sequence[dict[str, Any]], user: str, at_us: int) -> tuple[str, ...] | None:
    """``user_recent_items`` the obvious way: the newest 20 items in (at - 30d, at), oldest first; None: never seen."""
    seen = sorted(
        (x["ts_us"], x["interaction_id"], x["item_id"]) for x in rows if x["user_id"] == user and x["ts_us"] < at_us
    )
    if not seen:
        return None
    return tuple(item for ts, _, item in seen if ts > at_us - 30 * DAY_US)[-20:]


class Counting:
    """The real batch handler, counting what it applied and skipped."""

    def __init__(self, features: FeatureStore) -> None:
        self.updater = features.updater(None)
        self.applied = self.skipped = self.seen = 0

    async def __call__(self, events: Sequence[Event]) -> None:
        result = await self.updater.apply(events)
        self.applied += result.applied
        self.skipped += result.skipped
        self.seen += len(events)


async def consume(endpoints: Any, topic: str, group: str, features: FeatureStore, total: int) -> Counting:
    counting = Counting(features)
    consumer = EventConsumer(
        endpoints.kafka_bootstrap, group_id=group, topics=[topic], batch_handler=counting, service="feature-test"
    )
    await run_until(consumer, lambda: counting.seen >= total, within_s=90)
    return counting


@pytest.fixture(params=["postgresql", "redis"])
async def sequence_server(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest, sql_database, endpoints, unique: str, tmp_path: Path, record_infra_version
) -> AsyncIterator[tuple[FeatureStore, Path, str]]:
    """The feature service over real gRPC: registry on PostgreSQL, online store on PostgreSQL or on Redis."""
    prefix = f"test:{unique}:"
    url = endpoints.redis_url if request.param == "redis" else ""
    async with sql_database("postgresql") as engine:
        lake_root = tmp_path / "lake"
        features = FeatureStore(
            engine, lake_root, allowed_lateness=timedelta(days=30), online_store_url=url, online_store_prefix=prefix
        )
        await features.start(None)
        api = features.api()
        settings = FeatureSettings(grpc_port=0, data_dir=tmp_path, shutdown_grace_seconds=1)
        server = GrpcServer(
            settings,
            [lambda s: feature_pb2_grpc.add_FeatureServiceServicer_to_server(api, s)],
            ["FeatureService"],
            access=ACCESS,
        )
        task = asyncio.create_task(server.serve())
        try:
            yield features, lake_root, f"127.0.0.1:{server.port}"
        finally:
            await server.stop()
            await task
            await features.stop()
            if url:
                client = Redis.from_url(url)
                record_infra_version("Redis", str((await client.info("server"))["redis_version"]))
                for key in [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]:
                    await client.delete(key)
                await client.aclose()


def lookup_rows(rows: Sequence[dict[str, Any]], after_us: int) -> list[feature_pb2.EntityRow]:
    """Every user (and one never seen) after the newest event, 3 days on, and as of 2 of their own events."""
    rng = random.Random(3)
    by_user: dict[str, list[int]] = defaultdict(list)
    for x in rows:
        by_user[x["user_id"]].append(x["ts_us"])
    out = []
    for user in [*sorted(by_user), "user-never"]:
        times = by_user.get(user, [after_us])
        for at_us in (after_us, after_us + 3 * DAY_US, *rng.sample(times, min(2, len(times)))):
            stamp = Timestamp()
            stamp.FromMicroseconds(at_us)
            out.append(feature_pb2.EntityRow(timestamp=stamp, entity_ids={"user": user, "item": "item-0007"}))
    return out


async def test_online_lists_equal_historical_and_redelivery_adds_no_entry(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, sequence_server, tmp_path
) -> None:
    features, lake_root, address = sequence_server
    definitions = tmp_path / "features.yaml"
    definitions.write_text(DEFINITIONS)
    applied = await asyncio.to_thread(
        CliRunner().invoke, cli.app, ["feature", "apply", str(definitions), "--address", address]
    )
    assert applied.exit_code == 0, applied.output
    assert "user_history" in applied.output and "created" in applied.output
    again = await asyncio.to_thread(
        CliRunner().invoke, cli.app, ["feature", "apply", str(definitions), "--address", address, "--dry-run"]
    )
    assert again.exit_code == 0 and "unchanged" in again.output and "created" not in again.output, again.output

    now_us = time.time_ns() // 1000
    rows = interactions(now_us)
    sent = rows[:]
    random.Random(4).shuffle(sent)  # Kafka gets them out of event-time order
    topic = await make_topic("feature-sequences")
    async with EventProducer(endpoints.kafka_bootstrap, source="ingest-test") as producer:
        futures = [
            await producer.send_event(topic, canonical(x), key=x["user_id"], event_id=x["interaction_id"]) for x in sent
        ]
        await asyncio.gather(*futures)
    write_lake(lake_root, rows)
    first = await consume(endpoints, topic, f"feature-{unique}", features, len(sent))
    assert (first.applied, first.skipped) == (N_INTERACTIONS, 0)

    after = max(x["ts_us"] for x in rows) + 1
    entity_rows = lookup_rows(rows, after)
    request = feature_pb2.GetOnlineFeaturesRequest(feature_service="next_item_v1", entity_rows=entity_rows)
    async with open_caller_channel(address) as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        online = await stub.GetOnlineFeatures(request)
        chunks = [
            c
            async for c in stub.GetHistoricalFeatures(
                feature_pb2.GetHistoricalFeaturesRequest(feature_service="next_item_v1", entity_rows=entity_rows)
            )
        ]
        historical = sorted((r for c in chunks for r in c.rows), key=lambda r: r.row_index)
        assert list(online.feature_names) == list(chunks[0].feature_names)
        assert [list(r.values) for r in online.rows] == [list(r.values) for r in historical]

        lengths = []
        for row, asked in zip(online.rows, entity_rows, strict=True):
            user, at_us = asked.entity_ids["user"], asked.timestamp.ToMicroseconds()
            items, prices, count_7d = row.values[0], row.values[1], row.values[3]
            want = expected_items(rows, user, at_us)
            if want is None:
                assert items.status == feature_pb2.FEATURE_STATUS_MISSING, (user, at_us)
                continue
            assert items.status == feature_pb2.FEATURE_STATUS_PRESENT and items.value.WhichOneof("kind") == "list_value"
            assert scalar(items.value) == want, (user, at_us)
            assert all(v.WhichOneof("kind") == "double_value" for v in prices.value.list_value.values)
            assert len(prices.value.list_value.values) <= 5 and count_7d.status == feature_pb2.FEATURE_STATUS_PRESENT
            lengths.append(len(want))
        assert 20 in lengths and min(lengths) < 20  # the n cut, and users with fewer events
        empty_present = [r for r in online.rows if r.values[1].status == 1 and scalar(r.values[1].value) == ()]
        assert empty_present  # 3 days on: seen, nothing in the 6h window, an empty list that is PRESENT
        assert any(v.double_value > 0 for r in online.rows for v in (r.values[2].value, r.values[6].value))

        one = []
        for i in range(200):
            single = feature_pb2.GetOnlineFeaturesRequest(
                feature_service="next_item_v1", entity_rows=[entity_rows[(i * 4) % len(entity_rows)]]
            )
            started = time.perf_counter()
            await stub.GetOnlineFeatures(single)
            one.append(time.perf_counter() - started)

    redelivered = await consume(endpoints, topic, f"feature-redelivery-{unique}", features, len(sent))
    assert (redelivered.applied, redelivered.skipped) == (0, len(sent))
    resent = rows[:300]  # the same interactions again, at new offsets (a producer retry, a replay)
    async with EventProducer(endpoints.kafka_bootstrap, source="ingest-test") as producer:
        futures = [
            await producer.send_event(topic, canonical(x), key=x["user_id"], event_id=x["interaction_id"])
            for x in resent
        ]
        await asyncio.gather(*futures)
    duplicates = await consume(endpoints, topic, f"feature-resent-{unique}", features, len(sent) + len(resent))
    assert (duplicates.applied, duplicates.skipped) == (len(resent), len(sent))
    async with open_caller_channel(address) as channel:
        replay = await feature_pb2_grpc.FeatureServiceStub(channel).GetOnlineFeatures(request)
    assert replay == online

    q = statistics.quantiles(one, n=100, method="inclusive")
    print(
        f"\nlast_n online: GetOnlineFeatures 1 row of next_item_v1 (a 20-item list + 7 values): "
        f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms"
    )
