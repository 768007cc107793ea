"""A small synthetic fraud lake with a learnable signal, and a deterministic toy feature function.

Shared by the unit tests here and tests/integration/test_training_service.py (loaded by file path,
since pytest runs with --import-mode=importlib). Not a test module itself.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from aimesh.core.lake import replace_partition_range

RISKY = ("gaming", "crypto", "gift_cards", "electronics")
SAFE = ("grocery", "fuel", "restaurant", "travel", "fashion", "pharmacy")
FEATURE_NAMES = ["toy:amount_log", "toy:category", "toy:foreign", "toy:night", "toy:noise"]
END = datetime(2026, 11, 30, tzinfo=UTC)


@dataclass(frozen=True)
class LakeSummary:
    transactions: int
    frauds: int
    fraud_chargebacks: int
    newest: datetime


def toy_features(
    amount: float, category: str, country: str, time: datetime, merchant_id: str
) -> list[float | str | None]:
    """Deterministic features of one payment (what the fake FeatureService serves); the category is a
    categorical (string) feature."""
    noise = (sum(map(ord, merchant_id)) % 97) / 97.0
    return [
        math.log1p(amount),
        category,
        0.0 if country == "DE" else 1.0,
        1.0 if time.hour < 6 else 0.0,
        noise,
    ]


def _tx_schema() -> pa.Schema:
    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("event_id", pa.string()),
            ("entity_key", pa.string()),
            ("event_time", ts),
            ("ingest_time", ts),
            ("card_token", pa.string()),
            ("customer_id", pa.string()),
            ("merchant_id", pa.string()),
            ("merchant_category", pa.string()),
            ("amount", pa.float64()),
            ("currency", pa.string()),
            ("country", pa.string()),
            ("device_id", pa.string()),
            ("channel", pa.string()),
        ]
    )


def _cb_schema() -> pa.Schema:
    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("event_id", pa.string()),
            ("entity_key", pa.string()),
            ("event_time", ts),
            ("ingest_time", ts),
            ("transaction_id", pa.string()),
            ("reason", pa.string()),
        ]
    )


def write_lake(root: Path, *, transactions: int = 3000, days: int = 30, seed: int = 11) -> LakeSummary:
    """Write ``transactions`` payments over ``days`` days ending at ``END`` plus their chargebacks."""
    rng = random.Random(seed)
    start = END - timedelta(days=days)
    tx_rows: dict[date, list[dict[str, object]]] = defaultdict(list)
    cb_rows: dict[date, list[dict[str, object]]] = defaultdict(list)
    frauds = fraud_cbs = 0
    newest = start
    for i in range(transactions):
        t = start + timedelta(seconds=rng.uniform(0, days * 86400 - 3600))
        category = rng.choice(RISKY if rng.random() < 0.3 else SAFE)
        country = "DE" if rng.random() < 0.85 else rng.choice(["US", "GB", "NG", "BR"])
        amount = round(rng.lognormvariate(3.5, 1.0), 2)
        logit = -5.0 + 2.0 * (category in RISKY) + 1.8 * (country != "DE") + 0.5 * math.log1p(amount) / 2
        logit += 1.5 * (t.hour < 6)
        fraud = rng.random() < 1 / (1 + math.exp(-logit))
        tx_id = f"tx-{i:010d}"
        card = f"card-{rng.randrange(300)}"
        tx_rows[t.date()].append(
            {
                "event_id": tx_id,
                "entity_key": card,
                "event_time": t,
                "ingest_time": t,
                "card_token": "0" * 64,
                "customer_id": f"cust-{card.split('-')[1]}",
                "merchant_id": f"m-{rng.randrange(80)}",
                "merchant_category": category,
                "amount": amount,
                "currency": "EUR",
                "country": country,
                "device_id": f"dev-{rng.randrange(400)}",
                "channel": "online",
            }
        )
        newest = max(newest, t)
        frauds += fraud
        if (fraud and rng.random() < 0.9) or (not fraud and rng.random() < 0.005):
            cb_time = t + timedelta(days=rng.uniform(1, 10) if fraud else rng.uniform(2, 20))
            if cb_time <= END:
                fraud_cbs += fraud
                cb_rows[cb_time.date()].append(
                    {
                        "event_id": f"cb-{i:010d}",
                        "entity_key": card,
                        "event_time": cb_time,
                        "ingest_time": cb_time,
                        "transaction_id": tx_id,
                        "reason": "fraud" if fraud else "dispute",
                    }
                )
                newest = max(newest, cb_time)
    for source, rows, schema in (
        ("card_transactions", tx_rows, _tx_schema()),
        ("chargebacks", cb_rows, _cb_schema()),
    ):
        tables = {day: pa.Table.from_pylist(r, schema=schema) for day, r in rows.items()}
        replace_partition_range(root, source, partition=0, first=0, last=max(len(rows), 1), tables_by_day=tables)
    return LakeSummary(transactions=transactions, frauds=frauds, fraud_chargebacks=fraud_cbs, newest=newest)
