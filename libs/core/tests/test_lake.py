"""The lake's exactly-once file rules."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from aimesh.core.lake import dataset, part_files, replace_partition_range


def batch(ids: list[str]) -> pa.Table:
    return pa.table({"event_id": ids, "amount": [float(i) for i in range(len(ids))]})


def test_rewrite_after_crash_replaces_instead_of_duplicating(tmp_path: Path) -> None:
    d1, d2 = date(2026, 11, 1), date(2026, 11, 2)
    replace_partition_range(
        tmp_path, "tx", partition=0, first=0, last=9, tables_by_day={d1: batch([f"e{i}" for i in range(10)])}
    )
    # an attempt that crashed before its offsets were committed: offsets 10..29
    replace_partition_range(
        tmp_path, "tx", partition=0, first=10, last=29, tables_by_day={d1: batch([f"e{i}" for i in range(10, 30)])}
    )
    # the restarted consumer resumes at the committed offset 10 with a different batch size
    replace_partition_range(
        tmp_path,
        "tx",
        partition=0,
        first=10,
        last=19,
        tables_by_day={d1: batch([f"e{i}" for i in range(10, 15)]), d2: batch(["e15", "e16", "e17", "e18", "e19"])},
    )
    replace_partition_range(
        tmp_path,
        "tx",
        partition=1,
        first=0,
        last=4,
        tables_by_day={d2: batch(["p1-0", "p1-1", "p1-2", "p1-3", "p1-4"])},
    )
    ids = dataset(tmp_path, "tx").to_table(columns=["event_id"]).column("event_id").to_pylist()
    assert sorted(ids) == sorted([f"e{i}" for i in range(20)] + [f"p1-{i}" for i in range(5)])
    assert [(p, f, last) for _, p, f, last in part_files(tmp_path, "tx")] == [
        (0, 0, 9),
        (0, 10, 19),
        (0, 10, 19),
        (1, 0, 4),
    ]
    assert not list(tmp_path.rglob("*.tmp"))


def test_missing_source_reads_as_empty(tmp_path: Path) -> None:
    assert dataset(tmp_path, "nothing").to_table().num_rows == 0


def test_files_of_an_older_schema_read_with_the_columns_added_later(tmp_path: Path) -> None:
    day = date(2026, 11, 1)
    replace_partition_range(tmp_path, "tx", partition=0, first=0, last=1, tables_by_day={day: batch(["old"])})
    newer = batch(["new"]).append_column("terminal", pa.array(["pos-9"]))
    replace_partition_range(tmp_path, "tx", partition=1, first=0, last=1, tables_by_day={day: newer})

    table = dataset(tmp_path, "tx").to_table(columns=["event_id", "terminal"]).sort_by("event_id")

    assert table.to_pylist() == [{"event_id": "new", "terminal": "pos-9"}, {"event_id": "old", "terminal": None}]
