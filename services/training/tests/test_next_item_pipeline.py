"""A ``sequence_next_item`` run end to end with the in-memory fakes: filtered rows, next-item labels, the
leave-last-out split, sequence features as of strictly before each row, ranking metrics with the
popularity baseline, the two-output export with its parity check, popular items, and the champion gate;
plus the row filter and the split on their own."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from google.protobuf.duration_pb2 import Duration

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound
from aimesh.core.feature_client import HistoricalValues
from aimesh.core.lake import write_atomically
from aimesh.core.signature import Scalar
from aimesh.training.dataset import filter_rows, leave_last_out_split, load_rows
from aimesh.training.spec import check_spec

from . import sequential  # type: ignore[attr-defined]
from .test_pipeline import finished, make_service  # type: ignore[import-not-found]

T0 = datetime(2026, 11, 1, tzinfo=UTC)
FEATURE = "history:recent_items"
HISTORY = 8


def interactions(actors: int, per_actor: int, seed: int) -> list[dict[str, object]]:
    """The walks as interaction records, one per minute per actor; every other one a purchase, others views."""
    out = []
    for u, walk in enumerate(sequential.walks(actors, 40, per_actor, seed)):
        for t, item in enumerate(walk):
            out.append(
                {
                    "event_id": f"ev-{u}-{t}",
                    "entity_key": f"u{u}",
                    "event_time": T0 + timedelta(minutes=t, seconds=u),
                    "ingest_time": T0,
                    "item_id": sequential.item_name(item),
                    "event_type": "purchase" if t % 2 else "view",
                }
            )
    return out


def write(root: Path, records: list[dict[str, object]]) -> None:
    table = pa.Table.from_pylist(records)
    write_atomically(root / "source=interactions" / "date=2026-11-01" / "part-0-0-9.parquet", table)


class HistoryFeatures:
    """Feature service ``seq_v1``: the last ``HISTORY`` item ids of the actor's interactions strictly before the
    row's time, oldest first (what AGGREGATION_LAST_N serves), MISSING for an actor with none."""

    SERVICE = "seq_v1"

    def __init__(self, records: list[dict[str, object]]) -> None:
        self.events: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        for r in sorted(records, key=lambda r: r["event_time"]):  # type: ignore[arg-type, return-value]
            self.events[str(r["entity_key"])].append((r["event_time"], str(r["item_id"])))  # type: ignore[arg-type]

    async def online(
        self, request: feature_pb2.GetOnlineFeaturesRequest, *, time_left: float | None
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        if request.feature_service != self.SERVICE:
            raise NotFound(f"feature service {request.feature_service!r} does not exist")
        raise InvalidArgument("no rows")

    async def historical(self, feature_service: str, rows: Sequence[feature_pb2.EntityRow]) -> HistoricalValues:
        values: list[list[Scalar]] = []
        missing = 0
        for row in rows:
            events = self.events[row.entity_ids["actor"]]
            at = row.timestamp.ToDatetime(tzinfo=UTC)
            before = bisect.bisect_left([t for t, _ in events], at)
            if before == 0:
                values.append([None])
                missing += 1
                continue
            values.append([tuple(item for _, item in events[max(0, before - HISTORY) : before])])
        return HistoricalValues(names=[FEATURE], values=values, missing=missing)


def spec(**params: str) -> training_pb2.RunSpec:
    return training_pb2.RunSpec(
        model_name="next",
        feature_service="seq_v1",
        trainer="sequence_next_item",
        register_model=True,
        params={"epochs": "6", "embedding_dim": "16", "hidden": "32", "max_len": str(HISTORY), "lr": "0.01", **params},
        rows=training_pb2.TrainingRows(
            source="interactions", entity_fields={"entity_key": "actor"}, filter={"event_type": "purchase,add_to_cart"}
        ),
        label=training_pb2.LabelSpec(
            target_field="item_id", kind=training_pb2.LABEL_KIND_NEXT_ITEM, maturity=Duration(seconds=0)
        ),
        split=training_pb2.SplitSpec(kind=training_pb2.SPLIT_KIND_LEAVE_LAST_OUT, seed=3),
    )


async def test_a_next_item_run_trains_ranks_exports_and_promotes_over_popularity(tmp_path: Path) -> None:
    records = interactions(150, 40, seed=8)
    features = HistoryFeatures(records)
    async for service in make_service(tmp_path, features=features):
        write(service.lake, records)
        run = await service.worker.start(spec())
        done = await finished(service.runs, run.run_id, within=300)
        assert done.status == training_pb2.RUN_STATUS_SUCCEEDED, done.error_message
        m = done.metrics
        print({k: round(v, 3) for k, v in m.items()})
        # 20 purchases per actor, the newest purchase overall is not older than the cut-off (maturity 0)
        assert m["train_rows"] + m["eval_rows"] == 150 * 20 - 1 and m["eval_rows"] == 150
        assert m["hr@10"] > m["popularity_hr@10"] + 0.2 and m["hr@10_full"] > m["popularity_hr@10_full"] + 0.2
        assert m["triton_max_abs_diff"] <= 1e-5
        for key in ("ndcg@10", "ndcg@10_full", "popularity_ndcg@10", "popularity_ndcg@10_full"):
            assert 0.0 <= m[key] <= 1.0

        champion = await service.registry.get_alias("next", "champion")
        signature = champion.signature
        assert signature.task == signature_pb2.TASK_NEXT_ITEM and signature.trainer == "sequence_next_item"
        (seq,) = signature.inputs
        assert seq.kind == signature_pb2.INPUT_KIND_SEQUENCE and seq.length == HISTORY and seq.name == FEATURE
        assert len(seq.vocabulary) == m["vocabulary_size"] <= 40
        assert [(o.name, o.tensor, o.indexes_vocabulary_of) for o in signature.outputs] == [
            ("items", "OUTPUT__0", FEATURE),
            ("scores", "OUTPUT__1", ""),
        ]
        k = len(seq.vocabulary)  # export_k 100 is capped at the vocabulary
        assert list(signature.outputs[0].shape) == [k]
        assert 0 < len(signature.popular_items) == len(signature.popular_item_shares) <= 1000
        shares = list(signature.popular_item_shares)
        assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1.0)
        assert signature.entity_types == ["actor"] and signature.key_entity == "actor"
        config = (service.repo / "next" / "config.pbtxt").read_text()
        assert f"dims: [ {HISTORY} ]" in config and "OUTPUT__1" in config and config.count(f"dims: [ {k} ]") == 2


def test_the_row_filter_keeps_records_matching_every_field() -> None:
    table = pa.table({"kind": ["a", "b", "c", None], "n": [1, 2, 1, 1]})
    assert filter_rows(table, {"kind": "a,c"}).column("n").to_pylist() == [1, 1]
    assert filter_rows(table, {"kind": "a,c", "n": "2"}).num_rows == 0
    assert filter_rows(table, {"n": "1"}).column("kind").to_pylist() == ["a", "c", None]
    assert filter_rows(table, {}).num_rows == 4


def test_leave_last_out_evaluates_each_keys_newest_row() -> None:
    mask = leave_last_out_split(["u1", "u2", "u1", None, "u2", "u1"])
    assert mask.tolist() == [True, True, True, True, False, False]
    with pytest.raises(FailedPrecondition, match="leave-last-out"):
        leave_last_out_split(["u1", "u2"])


def test_next_item_rows_are_the_filtered_records_with_their_own_item_as_target(tmp_path: Path) -> None:
    records = interactions(3, 10, seed=1)
    write(tmp_path, records)
    rows = load_rows(tmp_path, check_spec(spec()))
    purchases = sorted((r for r in records if r["event_type"] == "purchase"), key=lambda r: r["event_time"])  # type: ignore[arg-type, return-value]
    assert list(rows.targets) == [r["item_id"] for r in purchases][:-1]  # the newest is not older than the cut-off
    assert rows.entity_ids[0] == {"actor": purchases[0]["entity_key"]} and np.all(rows.labels == 0)


def test_next_item_specs_are_checked() -> None:
    check_spec(spec())
    bad = spec()
    bad.label.source = "elsewhere"
    bad.label.join_field = "id"
    with pytest.raises(InvalidArgument, match="must be empty for LABEL_KIND_NEXT_ITEM"):
        check_spec(bad)
    wrong_trainer = spec()
    wrong_trainer.trainer = "mlp_classifier"
    wrong_trainer.params.clear()
    with pytest.raises(InvalidArgument, match="predicts TASK_BINARY_CLASSIFICATION"):
        check_spec(wrong_trainer)
    empty_value = spec()
    empty_value.rows.filter["event_type"] = "purchase,"
    with pytest.raises(InvalidArgument, match="filter"):
        check_spec(empty_value)
