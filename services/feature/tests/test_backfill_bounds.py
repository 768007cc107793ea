"""What keeps the backfill's memory flat in the lake's size: the lake is read one row group at a time
(however slow the consumer), and the write path runs the same SQL statements whatever the batch holds
(so the drivers' prepared-statement caches stay small)."""

from __future__ import annotations

import contextlib
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core import lake
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import load_file
from aimesh.feature.offline.lake import ID_COLUMNS, scan
from aimesh.feature.online.sql_store import SqlOnlineStore

from .conftest import FRAUD_V1_FILE, T0, lake_table, project, txn

SOURCE = "card_transactions"


def allocated() -> int:
    """Bytes held by pyarrow's memory pools (default, system and, where built, jemalloc)."""
    pools = [pa.default_memory_pool(), pa.system_memory_pool()]
    with contextlib.suppress(NotImplementedError):
        pools.append(pa.jemalloc_memory_pool())
    return sum(int(pool.bytes_allocated()) for pool in pools)


def write_files(root: Path, *, files: int, rows: int) -> None:
    """``files`` lake files of one row group of ``rows`` card transactions each."""
    for f in range(files):
        first = f * rows
        txns = [txn(f"e{first + i}", T0 + (first + i) * 1_000, card=f"c{i % 50}") for i in range(rows)]
        path = lake.part_path(root, SOURCE, day=date(2026, 1, 1), partition=0, first=first, last=first + rows - 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(lake_table(txns), path)


def test_a_slow_consumer_of_the_scan_holds_one_row_group_not_the_lake(tmp_path: Path) -> None:
    files, rows = 40, 2_000
    write_files(tmp_path, files=files, rows=rows)
    columns = [*ID_COLUMNS, "amount"]
    whole = lake.dataset(tmp_path, SOURCE).to_table(columns=columns).nbytes
    before = allocated()

    batches = scan(tmp_path, SOURCE, {"amount"}, batch_size=500)
    read = len(next(batches))
    time.sleep(0.3)  # whatever reads ahead in the background does it now
    held = allocated() - before
    read += sum(len(batch) for batch in batches)

    assert read == files * rows
    assert held < whole / 10, f"{held} bytes held after the first batch; the projected lake is {whole} bytes"


async def test_backfill_writes_run_the_same_statements_whatever_the_batch(sql_engine: AsyncEngine) -> None:
    store = SqlOnlineStore(sql_engine, cache_entries=0)
    await store.migrate()
    registry = Registry(load_file(FRAUD_V1_FILE))
    retention = {v.name: v.retention_us for v in registry.views.values()}
    statements: set[str] = set()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.add(statement)

    async def write(cards: int) -> None:
        records = [txn(f"e{cards}-{i}", T0 + i, card=f"c{i % cards}", merchant=f"m{i}") for i in range(3 * cards)]
        await store.write_backfill([ve for r in records for ve in project(registry, r)], retention)

    event.listen(sql_engine.sync_engine, "before_cursor_execute", record)
    try:
        await write(3)
        first = set(statements)
        for cards in (7, 40, 11):
            await write(cards)
    finally:
        event.remove(sql_engine.sync_engine, "before_cursor_execute", record)
    assert statements == first, sorted(statements - first)
