"""Fixtures of the feature service's tests: a feature store per backend, a lake writer, card transactions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.lake import replace_partition_range
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.online.protocol import ApplyResult
from aimesh.feature.records import SourceRecord, ViewEvent, view_event
from aimesh.feature.service import FeatureStore

if TYPE_CHECKING:
    from .online_backends import OnlineBackend

FIXTURES = Path(__file__).with_name("fixtures")
FRAUD_V1_FILE = FIXTURES / "fraud_v1.yaml"
"""The tests' definitions (a copy of the banking pack's; the service ships none)."""
FRAUD_V1_FEATURES: tuple[str, ...] = (
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
"""Feature service ``fraud_v1`` of ``FRAUD_V1_FILE``, in column order."""

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in epoch microseconds
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
STRING_FIELDS = ("customer_id", "merchant_id", "country", "device_id")


def txn(
    event_id: str,
    ts_us: int,
    *,
    card: str = "c1",
    customer: str = "u1",
    amount: float = 10.0,
    merchant: str = "m1",
    country: str = "DE",
    device: str = "d1",
) -> SourceRecord:
    """A card transaction as the feature service reads it."""
    attributes = {
        "customer_id": customer,
        "merchant_id": merchant,
        "country": country,
        "device_id": device,
        "amount": amount,
        "merchant_category": "grocery",
    }
    return SourceRecord(event_id, "card_transactions", card, ts_us, attributes)


def project(registry: Registry, record: SourceRecord) -> list[ViewEvent]:
    """``record`` as every view of its source keeps it."""
    views = registry.views_by_source.get(record.source, ())
    return [view_event(v, registry.entities[v.entity], record) for v in views]


async def apply(
    features: FeatureStore, partition: int, batch: Sequence[tuple[int, SourceRecord | None]], topic: str = "records"
) -> ApplyResult:
    """Apply ``(offset, record)`` pairs through the store, as the online updater does."""
    registry = features.registry.current
    retention = {v.name: v.retention_us for v in registry.views.values()}
    records = [(offset, project(registry, r) if r is not None else None) for offset, r in batch]
    return await features.store.apply(topic, partition, records, retention)


@pytest.fixture
async def features(sql_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[FeatureStore]:
    """The feature store with the test definitions (``FRAUD_V1_FILE``), on each ``sql_engine`` backend."""
    f = FeatureStore(sql_engine, tmp_path / "lake", allowed_lateness=timedelta(days=30))
    await f.start(FRAUD_V1_FILE)
    yield f
    await f.stop()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.integration),
        pytest.param("redis", marks=pytest.mark.integration),
    ]
)
async def online(
    request: pytest.FixtureRequest,
    sql_database: Callable[[str], AbstractAsyncContextManager[AsyncEngine]],
    endpoints: Any,
    unique: str,
    record_infra_version: Callable[[str, str], None],
) -> AsyncIterator[OnlineBackend]:
    """The online store on each backend (SQLite, PostgreSQL, Redis) over storage of this test only, with
    the test definitions' registry; see ``online_backends``."""
    from .online_backends import open_backend

    async with open_backend(
        request.param, sql_database, endpoints.redis_url, f"test:{unique}:", record_infra_version
    ) as backend:
        yield backend


def lake_table(txns: Sequence[SourceRecord]) -> pa.Table:
    """Card transactions in the lake's column layout (docs/scenario-fraud.md)."""
    ts = pa.array([t.ts_us for t in txns], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    columns: dict[str, pa.Array] = {
        "event_id": pa.array([t.event_id for t in txns], pa.string()),
        "entity_key": pa.array([t.entity_key for t in txns], pa.string()),
        "event_time": ts,
        "ingest_time": ts,
    }
    for name in (*STRING_FIELDS, "merchant_category"):
        columns[name] = pa.array([t.attributes[name] for t in txns], pa.string())
    columns["amount"] = pa.array([t.attributes["amount"] for t in txns], pa.float64())
    return pa.table(columns)


def write_lake_files(root: Path, txns: Sequence[SourceRecord], *, partition: int = 0, first: int = 0) -> Path:
    """Writes transactions to the lake under ``root`` as one partition's offset range, split by event date."""
    by_day: dict[date, list[SourceRecord]] = defaultdict(list)
    for t in txns:
        by_day[datetime.fromtimestamp(t.ts_us / 1e6, UTC).date()].append(t)
    replace_partition_range(
        root,
        "card_transactions",
        partition=partition,
        first=first,
        last=first + max(len(txns) - 1, 0),
        tables_by_day={day: lake_table(group) for day, group in by_day.items()},
    )
    return root


@pytest.fixture
def write_lake(tmp_path: Path) -> Callable[[Sequence[SourceRecord]], Path]:
    """Writes transactions to the lake under tmp_path (one partition, split by event date); returns the root."""
    return lambda txns: write_lake_files(tmp_path / "lake", txns)
