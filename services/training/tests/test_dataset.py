"""Label join, label maturity and the time split over a lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from aimesh.core.errors import FailedPrecondition
from aimesh.core.lake import write_atomically
from aimesh.training.dataset import LabelSpec, label_transactions, load_examples, positive_ids, time_split

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _write(root: Path, source: str, rows: list[dict[str, object]]) -> None:
    write_atomically(root / f"source={source}" / "date=2026-11-01" / "part-0-0-9.parquet", pa.Table.from_pylist(rows))


def _tx(i: int, day: float) -> dict[str, object]:
    return {
        "event_id": f"tx-{i}",
        "entity_key": "card-1",
        "event_time": T0 + timedelta(days=day),
        "ingest_time": T0,
        "customer_id": "cust-1",
        "amount": 10.0 * (i + 1),
        "merchant_id": "m-1",
        "merchant_category": "grocery",
        "country": "DE",
        "device_id": "d-1",
    }


def _cb(i: int, tx: int, day: float, reason: str) -> dict[str, object]:
    return {
        "event_id": f"cb-{i}",
        "entity_key": "card-1",
        "event_time": T0 + timedelta(days=day),
        "transaction_id": f"tx-{tx}",
        "reason": reason,
    }


def test_only_fraud_chargebacks_label_their_transaction() -> None:
    txs = pa.table({"event_id": ["tx-1", "tx-2", "tx-3"]})
    cbs = pa.table({"transaction_id": ["tx-2", "tx-3", "tx-9"], "reason": ["fraud", "dispute", "fraud"]})
    positives = positive_ids(cbs, LabelSpec())
    assert positives == {"tx-2", "tx-9"}
    assert label_transactions(txs, positives).tolist() == [0.0, 1.0, 0.0]


def test_load_examples_keeps_mature_transactions_in_time_order(tmp_path: Path) -> None:
    # transactions on days 0..19 (written out of order, one duplicate); chargebacks later; newest event day 25
    txs = [_tx(i, float(i)) for i in reversed(range(20))] + [_tx(3, 3.0)]
    _write(tmp_path, "card_transactions", txs)
    _write(tmp_path, "chargebacks", [_cb(1, 2, 5.0, "fraud"), _cb(2, 4, 6.0, "dispute"), _cb(3, 12, 25.0, "fraud")])
    ex = load_examples(tmp_path, events_source="card_transactions", labels=LabelSpec(), maturity=timedelta(days=10))
    assert ex.newest_event == T0 + timedelta(days=25)
    assert ex.cutoff == T0 + timedelta(days=15)
    assert [r.amount for r in ex.rows] == [10.0 * (i + 1) for i in range(15)]  # days 0..14, deduplicated
    assert np.flatnonzero(ex.labels).tolist() == [2, 12]  # the late fraud chargeback of tx-12 still counts
    assert np.all(np.diff(ex.times_us) > 0)
    assert ex.rows[0].card_id == "card-1" and ex.rows[0].time == T0


def test_load_examples_explains_when_nothing_is_mature(tmp_path: Path) -> None:
    _write(tmp_path, "card_transactions", [_tx(0, 0.0), _tx(1, 1.0)])
    _write(tmp_path, "chargebacks", [_cb(1, 0, 2.0, "fraud")])
    with pytest.raises(FailedPrecondition, match="label_maturity_days=10"):
        load_examples(tmp_path, events_source="card_transactions", labels=LabelSpec(), maturity=timedelta(days=10))


def test_an_empty_lake_is_a_clear_failure(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="no data for source 'card_transactions'"):
        load_examples(tmp_path, events_source="card_transactions", labels=LabelSpec(), maturity=timedelta(days=1))


def test_time_split_is_earlier_80_percent_and_never_splits_an_instant() -> None:
    times = np.arange(10, dtype=np.int64)
    assert time_split(times, 0.8) == 8
    tied = np.array([0, 1, 2, 3, 4, 5, 6, 7, 7, 7], dtype=np.int64)
    i = time_split(tied, 0.8)
    assert i == 7 and tied[:i].max() < tied[i:].min()
    with pytest.raises(FailedPrecondition):
        time_split(np.zeros(10, dtype=np.int64), 0.8)
    with pytest.raises(FailedPrecondition, match="sorted"):
        time_split(np.array([3, 1, 2], dtype=np.int64), 0.5)
