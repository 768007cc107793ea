"""Backfill peak memory: the feature service's backfill over a generated lake, its RSS sampled from outside.

The lake is written directly with pyarrow, in batches of 1,000,000 rows (the ingest lake layout and
columns of ``card_transactions``: ``aimesh.core.lake.part_path``, ``event_id``, ``entity_key``,
``event_time``, ``ingest_time`` and the payload attributes), rows spread evenly over the 30 days before
now, 100 transactions per card on average. Then ``aimesh feature backfill`` (the feature service's CLI)
initialises the benchmark's views from it in its own process; ``sampling.ProcessWatch`` records the
peak RSS of that process tree every 0.1 s.

When the installed feature service has no backfill command, ``measure`` says so instead of a number.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aimesh.core import lake
from aimesh.devstack.paths import repo_root
from bench.feature.aimesh_side import FeatureProcess
from bench.feature.data import SOURCE
from bench.feature.report import Backfill
from bench.ingest.sampling import ProcessWatch

BATCH_ROWS = 1_000_000
ROWS_PER_CARD = 100
SPAN = timedelta(days=30)
BACKFILL_VIEWS = ("card_amount_stats",)
"""The larger view (32 of the 50 features, with the ``log1p`` transformation); backfilling the other one
too would double a run that takes minutes at 10 million rows on a 2-core machine."""
TIMESTAMP_US = pa.timestamp("us", tz="UTC")
COUNTRIES = pa.array(["DE", "FR", "NL", "ES", "IT", "GB", "US", "PL", "BE", "AT"])
CATEGORIES = pa.array(["grocery", "fuel", "restaurant", "travel", "electronics", "gaming", "crypto", "gift_cards"])
CHANNELS = pa.array(["pos", "online", "atm"])


class BackfillError(RuntimeError):
    """The backfill ran and failed; the message quotes its output."""


def cli() -> Path | None:
    """The ``aimesh`` CLI beside this interpreter when it has ``feature backfill``, else None."""
    aimesh = Path(sys.executable).parent / "aimesh"
    if not aimesh.exists():
        return None
    probe = subprocess.run([aimesh, "feature", "backfill", "--help"], capture_output=True, check=False)
    return aimesh if probe.returncode == 0 else None


def environment(data_dir: Path, lake_root: Path) -> dict[str, str]:
    """The feature service's settings the CLI reads: its data directory (SQLite) and the lake."""
    return {
        **os.environ,
        "FEATURE_DATA_DIR": str(data_dir),
        "FEATURE_LAKE_DIR": str(lake_root),
        "FEATURE_SHIP_LOGS": "false",
    }


def write_lake(root: Path, *, rows: int, seed: int) -> float:
    """Write ``rows`` card transactions under ``root`` (blocking); returns the seconds it took."""
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    cards = max(1, rows // ROWS_PER_CARD)
    card_ids = pc.binary_join_element_wise("card-bf-", pc.cast(pa.array(np.arange(cards)), pa.string()), "")
    end_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    start_us = end_us - int(SPAN.total_seconds() * 1_000_000)
    step = (end_us - start_us) / max(rows, 1)
    for first in range(0, rows, BATCH_ROWS):
        last = min(rows, first + BATCH_ROWS) - 1
        count = last - first + 1
        times = start_us + (np.arange(first, last + 1) * step).astype(np.int64)
        table = pa.table(
            {
                "event_id": pc.binary_join_element_wise(
                    "bf-", pc.cast(pa.array(np.arange(first, last + 1)), pa.string()), ""
                ),
                "entity_key": pc.take(card_ids, pa.array(rng.integers(0, cards, count))),
                "event_time": pa.array(times, TIMESTAMP_US),
                "ingest_time": pa.array(times, TIMESTAMP_US),
                "customer_id": pc.binary_join_element_wise(
                    "cust-bf-", pc.cast(pa.array(rng.integers(0, cards, count)), pa.string()), ""
                ),
                "merchant_id": pc.binary_join_element_wise(
                    "merch-", pc.cast(pa.array(rng.integers(0, 5000, count)), pa.string()), ""
                ),
                "merchant_category": pc.take(CATEGORIES, pa.array(rng.integers(0, len(CATEGORIES), count))),
                "amount": pa.array(np.round(rng.lognormal(3.5, 1.0, count), 2)),
                "currency": pa.array(["EUR"] * count),
                "country": pc.take(COUNTRIES, pa.array(rng.integers(0, len(COUNTRIES), count))),
                "device_id": pc.binary_join_element_wise(
                    "dev-", pc.cast(pa.array(rng.integers(0, cards * 2, count)), pa.string()), ""
                ),
                "channel": pc.take(CHANNELS, pa.array(rng.integers(0, len(CHANNELS), count))),
            }
        )
        days = pc.cast(pc.cast(table["event_time"], pa.timestamp("us")), pa.date32())
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            path = lake.part_path(root, SOURCE, day=day, partition=0, first=first, last=last)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, path, row_group_size=128_000)
    return time.monotonic() - started


async def measure(workdir: Path, *, rows: int, seed: int) -> Backfill:
    """Generate the lake, apply the benchmark's definitions, then backfill ``BACKFILL_VIEWS`` under the RSS
    sampler. The result's peak is the largest of the views' runs, its time their sum; a ``missing`` result when
    the CLI has no backfill. Raises ``BackfillError`` when a command exits non-zero.
    """
    aimesh = await asyncio.to_thread(cli)
    if aimesh is None:
        return Backfill(missing="this feature service has no `aimesh feature backfill` command yet")
    lake_root, data_dir = workdir / "lake", workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = environment(data_dir, lake_root)
    await _apply_definitions(workdir, data_dir)
    print(f"backfill: writing {rows:,} lake rows ...", flush=True)
    written_s = await asyncio.to_thread(write_lake, lake_root, rows=rows, seed=seed)
    print(f"lake written in {written_s:.0f} s; backfilling ...", flush=True)
    peak, seconds = 0, 0.0
    for view in BACKFILL_VIEWS:
        print(f"backfilling {view} ...", flush=True)
        view_peak, view_s = await _run(
            [str(aimesh), "feature", "backfill", view], env, workdir / f"backfill-{view}.log"
        )
        print(f"{view}: {view_s:.0f} s, peak RSS {view_peak / 1024**2:,.0f} MiB", flush=True)
        peak, seconds = max(peak, view_peak), seconds + view_s
    shutil.rmtree(lake_root, ignore_errors=True)
    note = f"view {', '.join(BACKFILL_VIEWS)} only (32 of the 50 features)"
    if rows < 10_000_000:
        note += f"; {rows:,} lake rows, fewer than 10 million (--lake-rows/--quick)"
    return Backfill(rows=rows, seconds=seconds, peak_rss=peak, note=note)


async def _apply_definitions(workdir: Path, data_dir: Path) -> None:
    """Store the benchmark's definitions in the backfill's database: the feature service started once with
    ``FEATURE_DEFINITIONS_FILE``, no topic and an empty lake (so its start-up backfill has nothing to do)."""
    service = FeatureProcess(
        workdir / "service",
        bootstrap=os.environ.get("AIMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        topic=None,
        run_id="backfill",
        extra_env={"FEATURE_DATA_DIR": str(data_dir), "FEATURE_LAKE_DIR": str(workdir / "empty-lake")},
    )
    service.start()
    try:
        await asyncio.to_thread(service.wait_ready, 120)
    except Exception as exc:
        raise BackfillError(f"the feature service did not apply the definitions: {exc}{service.quote_log()}") from exc
    finally:
        await asyncio.to_thread(service.stop)


async def _run(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    """Run ``command`` with its RSS sampled; returns (peak RSS bytes, seconds). Raises ``BackfillError``."""
    started = time.monotonic()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=out, stderr=subprocess.STDOUT, cwd=repo_root(), env=env
        )
        watch = ProcessWatch(psutil.Process(process.pid)).start()
        code = await process.wait()
        watch.stop()
    if code != 0:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        tail = "\n".join(text.splitlines()[-15:])
        raise BackfillError(f"{' '.join(command)} exited with {code}:\n{tail}")
    return watch.peak_rss, time.monotonic() - started
