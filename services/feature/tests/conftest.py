"""Fixtures of the feature service's tests: an online store per backend, a lake writer, transactions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.lake import replace_partition_range
from aimesh.feature.records import Transaction
from aimesh.feature.store import OnlineStore

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in epoch microseconds
HOUR_US = 3_600_000_000


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
) -> Transaction:
    return Transaction(event_id, card, customer, ts_us, amount, merchant, country, device)


@pytest.fixture
async def store(sql_engine: AsyncEngine) -> OnlineStore:
    """The online store, migrated, on each backend of the root conftest's ``sql_engine``."""
    s = OnlineStore(sql_engine)
    await s.migrate()
    return s


def lake_table(txns: Sequence[Transaction]) -> pa.Table:
    """Card transactions in the lake's column layout (docs/scenario-fraud.md)."""
    ts = pa.array([t.ts_us for t in txns], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "event_id": pa.array([t.event_id for t in txns], pa.string()),
            "entity_key": pa.array([t.card_id for t in txns], pa.string()),
            "event_time": ts,
            "ingest_time": ts,
            "customer_id": pa.array([t.customer_id for t in txns], pa.string()),
            "merchant_id": pa.array([t.merchant_id for t in txns], pa.string()),
            "merchant_category": pa.array(["grocery"] * len(txns), pa.string()),
            "amount": pa.array([t.amount for t in txns], pa.float64()),
            "currency": pa.array(["EUR"] * len(txns), pa.string()),
            "country": pa.array([t.country for t in txns], pa.string()),
            "device_id": pa.array([t.device_id for t in txns], pa.string()),
            "channel": pa.array(["pos"] * len(txns), pa.string()),
        }
    )


@pytest.fixture
def write_lake(tmp_path: Path) -> Callable[[Sequence[Transaction]], Path]:
    """Writes transactions to a lake under tmp_path (one partition, split by event date); returns the root."""
    root = tmp_path / "lake"

    def write(txns: Sequence[Transaction]) -> Path:
        by_day: dict[date, list[Transaction]] = defaultdict(list)
        for t in txns:
            by_day[datetime.fromtimestamp(t.ts_us / 1e6, UTC).date()].append(t)
        replace_partition_range(
            root,
            "card_transactions",
            partition=0,
            first=0,
            last=max(len(txns) - 1, 0),
            tables_by_day={day: lake_table(group) for day, group in by_day.items()},
        )
        return root

    return write
