"""The feature service against real Kafka: canonical records → online store (exactly-once effect), and
GetOnlineFeatures == GetHistoricalFeatures (lake) for the same rows, over real gRPC.

Measures GetOnlineFeatures latency (1 and 100 rows) and the online update rate; prints them (`-s`).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select, update
from typer.testing import CliRunner

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.channels import open_caller_channel
from aimesh.core.events import Event
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.lake import replace_partition_range
from aimesh.core.sql import create_engine
from aimesh.core.testing import run_until
from aimesh.devstack import cli
from aimesh.feature import schema
from aimesh.feature.access import ACCESS
from aimesh.feature.online.sql_store import SqlOnlineStore
from aimesh.feature.online.updater import OnlineUpdater
from aimesh.feature.service import FeatureStore
from aimesh.feature.settings import FeatureSettings

pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).parents[2] / "services/feature/tests/fixtures/fraud_v1.yaml"
"""The feature service's test definitions (the service ships none)."""
FRAUD_V1_FEATURES = (
    "card_txn_count_1h",
    "card_txn_amount_sum_1h",
    "card_txn_count_24h",
    "card_txn_amount_sum_24h",
    "card_amount_mean_7d",
    "card_distinct_merchants_24h",
    "card_seconds_since_prev",
    "card_country_is_new",
    "card_device_is_new",
    "customer_txn_count_24h",
    "customer_txn_amount_sum_24h",
    "customer_amount_mean_7d",
    "customer_distinct_merchants_24h",
    "amount",
    "amount_to_card_mean_7d",
    "merchant_category_risk",
)

N_TXNS = 1000
HOUR_US = 3_600_000_000
CATEGORIES = ["grocery", "fuel", "restaurant", "travel", "electronics", "gaming", "crypto", "gift_cards"]


def transactions(now_us: int) -> list[dict[str, object]]:
    rng = random.Random(11)
    start = now_us - 4 * 24 * HOUR_US
    out = []
    for i in range(N_TXNS):
        card = rng.randrange(80)
        out.append(
            {
                "transaction_id": f"tx-{i:010d}",
                "card_id": f"card-{card:04d}",
                "customer_id": f"cust-{card // 2:04d}",
                "merchant_id": f"m-{rng.randrange(40):03d}",
                "merchant_category": rng.choice(CATEGORIES),
                "amount": round(rng.lognormvariate(3.5, 1.0), 2),
                "country": rng.choice(["DE", "DE", "DE", "FR", "US"]),
                "device_id": f"dev-{card:04d}-{rng.randrange(3)}",
                "ts_us": start + rng.randrange(0, 4 * 24 * HOUR_US - HOUR_US),
            }
        )
    return out


def canonical(t: dict[str, object]) -> events_pb2.CanonicalRecord:
    r = events_pb2.CanonicalRecord(
        event_id=str(t["transaction_id"]), source="card_transactions", entity_key=str(t["card_id"]), entity_type="card"
    )
    r.event_time.FromMicroseconds(int(t["ts_us"]))  # type: ignore[call-overload]
    r.ingest_time.GetCurrentTime()
    r.attributes["amount"].double_value = float(t["amount"])  # type: ignore[arg-type]
    for name in ("customer_id", "merchant_id", "merchant_category", "country", "device_id"):
        r.attributes[name].string_value = str(t[name])
    r.attributes["currency"].string_value = "EUR"
    r.attributes["channel"].string_value = "pos"
    return r


def chargeback(i: int, t: dict[str, object]) -> events_pb2.CanonicalRecord:
    r = events_pb2.CanonicalRecord(
        event_id=f"cb-{i}", source="chargebacks", entity_key=str(t["card_id"]), entity_type="card"
    )
    r.event_time.FromMicroseconds(int(t["ts_us"]) + HOUR_US)  # type: ignore[call-overload]
    r.attributes["transaction_id"].string_value = str(t["transaction_id"])
    r.attributes["reason"].string_value = "fraud"
    return r


def write_lake(root: Path, txns: Sequence[dict[str, object]]) -> None:
    """The transactions in the lake layout ingest writes (docs/scenario-fraud.md), one file per event date."""
    by_day: dict[date, list[dict[str, object]]] = defaultdict(list)
    for t in txns:
        by_day[datetime.fromtimestamp(int(t["ts_us"]) / 1e6, UTC).date()].append(t)  # type: ignore[call-overload]

    def table(rows: list[dict[str, object]]) -> pa.Table:
        ts = pa.array([r["ts_us"] for r in rows], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        cols: dict[str, pa.Array] = {
            "event_id": pa.array([r["transaction_id"] for r in rows], pa.string()),
            "entity_key": pa.array([r["card_id"] for r in rows], pa.string()),
            "event_time": ts,
            "ingest_time": ts,
        }
        for name in ("customer_id", "merchant_id", "merchant_category", "country", "device_id"):
            cols[name] = pa.array([r[name] for r in rows], pa.string())
        cols["amount"] = pa.array([r["amount"] for r in rows], pa.float64())
        return pa.table(cols)

    replace_partition_range(
        root,
        "card_transactions",
        partition=0,
        first=0,
        last=len(txns) - 1,
        tables_by_day={day: table(rows) for day, rows in by_day.items()},
    )


class TimedUpdater:
    """The real batch handler, timing the span from the first batch to the last."""

    def __init__(self, updater: OnlineUpdater) -> None:
        self.updater = updater
        self.first: float | None = None
        self.last = 0.0
        self.applied = 0
        self.skipped = 0
        self.seen = 0

    async def __call__(self, events: Sequence[Event]) -> None:
        started = time.perf_counter()
        self.first = self.first if self.first is not None else started
        result = await self.updater.apply(events)
        self.last = time.perf_counter()
        self.applied += result.applied
        self.skipped += result.skipped
        self.seen += len(events)


async def consume_all(endpoints, topic: str, group: str, features: FeatureStore, total: int) -> TimedUpdater:  # type: ignore[no-untyped-def]
    timed = TimedUpdater(features.updater(None))
    consumer = EventConsumer(
        endpoints.kafka_bootstrap, group_id=group, topics=[topic], batch_handler=timed, service="feature-test"
    )
    await run_until(consumer, lambda: timed.seen >= total, within_s=90)
    return timed


async def snapshot(store: SqlOnlineStore) -> dict[str, list[tuple[object, ...]]]:
    async with store.engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in (await conn.execute(select(t))).all())
            for t in (schema.view_events, schema.view_seen, schema.consumer_offsets)
        }


def payment_row(t: dict[str, object], at_us: int) -> feature_pb2.EntityRow:
    ts = Timestamp()
    ts.FromMicroseconds(at_us)
    ctx = {
        "amount": common_pb2.Value(double_value=float(t["amount"])),  # type: ignore[arg-type]
        "merchant_id": common_pb2.Value(string_value=str(t["merchant_id"])),
        "merchant_category": common_pb2.Value(string_value=str(t["merchant_category"])),
        "country": common_pb2.Value(string_value=str(t["country"])),
        "device_id": common_pb2.Value(string_value=str(t["device_id"])),
    }
    return feature_pb2.EntityRow(
        timestamp=ts, entity_ids={"card": str(t["card_id"]), "customer": str(t["customer_id"])}, request_context=ctx
    )


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000


@pytest.fixture
async def feature_server(tmp_path: Path) -> AsyncIterator[tuple[FeatureStore, Path, str]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'feature.db'}")
    lake_root = tmp_path / "lake"
    features = FeatureStore(engine, lake_root)
    await features.start(DEFINITIONS)
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
        await engine.dispose()


async def test_online_equals_historical_and_redelivery_changes_nothing(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, feature_server, tmp_path, monkeypatch
) -> None:
    features, lake_root, address = feature_server
    store = features.store
    now_us = time.time_ns() // 1000
    txns = transactions(now_us)
    topic = await make_topic("feature-records")
    async with EventProducer(endpoints.kafka_bootstrap, source="ingest-test") as producer:
        futures = [
            await producer.send_event(topic, canonical(t), key=str(t["card_id"]), event_id=str(t["transaction_id"]))
            for t in txns
        ]
        futures += [
            await producer.send_event(topic, chargeback(i, t), key=str(t["card_id"]), event_id=f"cb-{i}")
            for i, t in enumerate(txns[:50])
        ]
        await asyncio.gather(*futures)
    total = len(futures)
    write_lake(lake_root, txns)

    first = await consume_all(endpoints, topic, f"feature-{unique}", features, total)
    assert (first.applied, first.skipped) == (N_TXNS, 0)
    rate = N_TXNS / (first.last - first.first) if first.first is not None else 0.0
    assert sum((await store.offsets()).values()) == total

    rng = random.Random(5)
    after = max(int(t["ts_us"]) for t in txns) + 1  # type: ignore[call-overload]
    sample = rng.sample(txns, 200)
    payments = [payment_row(t, after + i) for i, t in enumerate(sample)]
    payments.append(payment_row({**sample[0], "card_id": "card-unknown", "customer_id": "cust-unknown"}, after))

    async with open_caller_channel(address) as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        online = await stub.GetOnlineFeatures(
            feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v1", entity_rows=payments)
        )
        chunks = [
            c
            async for c in stub.GetHistoricalFeatures(
                feature_pb2.GetHistoricalFeaturesRequest(feature_service="fraud_v1", entity_rows=payments)
            )
        ]
        assert list(online.feature_names) == list(chunks[0].feature_names) == list(FRAUD_V1_FEATURES)
        historical = sorted((r for c in chunks for r in c.rows), key=lambda r: r.row_index)
        assert [r.row_index for r in historical] == list(range(len(payments)))
        for on, off in zip(online.rows, historical, strict=True):
            assert list(on.values) == list(off.values), f"row {on.row_index} ({on.entity_id}) differs"
        assert any(v.value.double_value > 0 for v in online.rows[0].values[:4])
        assert {v.status for v in online.rows[-1].values[:13]} == {feature_pb2.FEATURE_STATUS_MISSING}

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOnlineFeatures(
                feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v2", entity_ids=["c"])
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "fraud_v1" in (err.value.details() or "")

        one, hundred = [], []
        for i in range(300):
            request = feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v1", entity_rows=[payments[i % 200]])
            started = time.perf_counter()
            await stub.GetOnlineFeatures(request)
            one.append(time.perf_counter() - started)
        for i in range(60):
            batch = payments[(i * 7) % 100 : (i * 7) % 100 + 100]
            request = feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v1", entity_rows=batch)
            started = time.perf_counter()
            await stub.GetOnlineFeatures(request)
            hundred.append(time.perf_counter() - started)

    before = await snapshot(store)
    again = await consume_all(endpoints, topic, f"feature-redelivery-{unique}", features, total)
    assert (again.applied, again.skipped) == (0, total)
    assert await snapshot(store) == before
    async with open_caller_channel(address) as channel:
        replay = await feature_pb2_grpc.FeatureServiceStub(channel).GetOnlineFeatures(
            feature_pb2.GetOnlineFeaturesRequest(feature_service="fraud_v1", entity_rows=payments)
        )
    assert replay == online

    monkeypatch.setenv("FEATURE_DATA_DIR", str(tmp_path))  # the fixture's database and lake
    checked = await asyncio.to_thread(CliRunner().invoke, cli.app, ["feature", "check", "--samples", "30"])
    assert checked.exit_code == 0, checked.output
    assert "consistent" in checked.output and "card_txn_stats" in checked.output
    async with store.engine.begin() as conn:  # corrupt one online value: the check must fail and name it
        await conn.execute(
            update(schema.view_events)
            .where(schema.view_events.c.view == "card_txn_stats")
            .values(payload='{"amount": 1e9}')
        )
    broken = await asyncio.to_thread(CliRunner().invoke, cli.app, ["feature", "check", "--samples", "30"])
    assert broken.exit_code == 1 and "mismatches" in broken.output and "card_txn_amount_sum_24h" in broken.output

    p50_1, p99_1 = percentiles(one)
    p50_100, p99_100 = percentiles(hundred)
    print(
        f"\nfeature online update: {N_TXNS} transactions ({total} records) applied at {rate:,.0f} txn/s (SQLite)"
        f"\nGetOnlineFeatures 1 row: p50 {p50_1:.2f} ms, p99 {p99_1:.2f} ms"
        f"\nGetOnlineFeatures 100 rows: p50 {p50_100:.2f} ms, p99 {p99_100:.2f} ms"
    )
