"""Label join, label maturity and the time split over a lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from google.protobuf.duration_pb2 import Duration

from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition
from aimesh.core.lake import write_atomically
from aimesh.training.dataset import load_rows, random_split, time_split
from aimesh.training.spec import RunPlan, check_spec

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


def plan(maturity_days: float = 10, **label: object) -> RunPlan:
    fields: dict[str, object] = {
        "source": "chargebacks",
        "join_field": "transaction_id",
        "target_field": "reason",
        "kind": training_pb2.LABEL_KIND_BINARY,
        "positive_values": ["fraud"],
        "maturity": Duration(seconds=int(maturity_days * 86400)),
        **label,
    }
    return check_spec(
        training_pb2.RunSpec(
            model_name="m",
            feature_service="fs",
            trainer="logistic_regression" if fields["kind"] == training_pb2.LABEL_KIND_BINARY else "mlp_regressor",
            rows=training_pb2.TrainingRows(
                source="card_transactions",
                entity_fields={"entity_key": "card", "customer_id": "customer"},
                context_fields=["amount", "merchant_category"],
            ),
            label=training_pb2.LabelSpec(**fields),  # type: ignore[arg-type]
        )
    )


def test_load_rows_keeps_mature_rows_in_time_order_with_joined_binary_labels(tmp_path: Path) -> None:
    # transactions on days 0..19 (written out of order, one duplicate); chargebacks later; newest event day 25
    txs = [_tx(i, float(i)) for i in reversed(range(20))] + [_tx(3, 3.0)]
    _write(tmp_path, "card_transactions", txs)
    _write(tmp_path, "chargebacks", [_cb(1, 2, 5.0, "fraud"), _cb(2, 4, 6.0, "dispute"), _cb(3, 12, 25.0, "fraud")])
    rows = load_rows(tmp_path, plan())
    assert rows.newest_event == T0 + timedelta(days=25)
    assert rows.cutoff == T0 + timedelta(days=15)
    assert [c["amount"] for c in rows.context] == [10.0 * (i + 1) for i in range(15)]  # days 0..14, deduplicated
    assert np.flatnonzero(rows.labels).tolist() == [2, 12]  # the late chargeback of tx-12 still counts
    assert np.all(np.diff(rows.times_us) > 0)
    assert rows.entity_ids[0] == {"card": "card-1", "customer": "cust-1"} and rows.times[0] == T0
    assert rows.context_types == {"amount": 1, "merchant_category": 3}


def test_labels_in_the_row_itself_and_numeric_labels(tmp_path: Path) -> None:
    _write(tmp_path, "card_transactions", [_tx(i, float(i)) for i in range(5)])
    same_row = load_rows(
        tmp_path, plan(0, source="", join_field="", target_field="merchant_category", positive_values=["grocery"])
    )
    assert same_row.labels.tolist() == [1.0] * 4  # the newest row is not older than the cut-off
    numeric = load_rows(
        tmp_path,
        plan(
            0,
            source="",
            join_field="",
            target_field="amount",
            kind=training_pb2.LABEL_KIND_REGRESSION,
            positive_values=[],
        ),
    )
    assert numeric.labels.tolist() == [10.0, 20.0, 30.0, 40.0]


def test_load_rows_explains_when_nothing_is_mature(tmp_path: Path) -> None:
    _write(tmp_path, "card_transactions", [_tx(0, 0.0), _tx(1, 1.0)])
    _write(tmp_path, "chargebacks", [_cb(1, 0, 2.0, "fraud")])
    with pytest.raises(FailedPrecondition, match=r"lower spec\.label\.maturity"):
        load_rows(tmp_path, plan())


def test_random_split_is_seeded() -> None:
    mask = random_split(100, 0.7, seed=3)
    assert mask.sum() == 70 and (mask == random_split(100, 0.7, seed=3)).all()
    assert not (mask == random_split(100, 0.7, seed=4)).all()


def test_time_split_is_earlier_80_percent_and_never_splits_an_instant() -> None:
    times = np.arange(10, dtype=np.int64)
    assert time_split(times, 0.8).sum() == 8
    tied = np.array([0, 1, 2, 3, 4, 5, 6, 7, 7, 7], dtype=np.int64)
    mask = time_split(tied, 0.8)
    assert mask.sum() == 7 and tied[mask].max() < tied[~mask].min()
    with pytest.raises(FailedPrecondition):
        time_split(np.zeros(10, dtype=np.int64), 0.8)
    with pytest.raises(FailedPrecondition, match="sorted"):
        time_split(np.array([3, 1, 2], dtype=np.int64), 0.5)
