"""The lake: Parquet files partitioned by source and event date, shared by ingest (writes), feature and
training (read).

Layout: ``<root>/source=<source>/date=<YYYY-MM-DD>/part-<partition>-<first>-<last>.parquet`` where
``first``/``last`` are the Kafka offsets (zero-padded) of the upstream records in the file.

Exactly-once effect: one writer per Kafka partition (the consumer group guarantees it) writes a batch
of offsets ``[first, last]`` only after removing every file of that partition whose first offset is
``>= first``: those come from an attempt whose offsets were never committed, so they are replaced,
never duplicated. Files are written to a temporary name, fsynced and renamed, so a reader never sees
half a file and a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs

_PART = re.compile(r"part-(\d+)-(\d+)-(\d+)\.parquet$")
OFFSET_DIGITS = 20


def source_dir(root: Path, source: str) -> Path:
    return root / f"source={source}"


def part_path(root: Path, source: str, *, day: date, partition: int, first: int, last: int) -> Path:
    """The file that holds offsets ``first..last`` of ``partition`` for events dated ``day``."""
    name = f"part-{partition}-{first:0{OFFSET_DIGITS}d}-{last:0{OFFSET_DIGITS}d}.parquet"
    return source_dir(root, source) / f"date={day.isoformat()}" / name


def part_files(root: Path, source: str, partition: int | None = None) -> list[tuple[Path, int, int, int]]:
    """Every part file of ``source`` (optionally one partition) as (path, partition, first, last)."""
    found = []
    pattern = "date=*/part-*.parquet" if partition is None else f"date=*/part-{partition}-*.parquet"
    for path in source_dir(root, source).glob(pattern):
        m = _PART.search(path.name)
        if m and (partition is None or int(m.group(1)) == partition):
            found.append((path, int(m.group(1)), int(m.group(2)), int(m.group(3))))
    return sorted(found, key=lambda f: (f[1], f[2]))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, table: pa.Table) -> None:
    """Write ``table`` to ``path`` durably: temp file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def replace_partition_range(
    root: Path, source: str, *, partition: int, first: int, last: int, tables_by_day: dict[date, pa.Table]
) -> list[Path]:
    """Make the lake hold exactly ``tables_by_day`` for offsets ``first..last`` of ``partition``.

    Removes the partition's files that start at or after ``first`` (uncommitted earlier attempts), then
    writes one file per event date. Returns the files written. Call it before committing the offsets.
    """
    for path, _p, start, _end in part_files(root, source, partition):
        if start >= first:
            path.unlink(missing_ok=True)
    written = []
    for day, table in sorted(tables_by_day.items()):
        if table.num_rows:
            path = part_path(root, source, day=day, partition=partition, first=first, last=last)
            write_atomically(path, table)
            written.append(path)
    return written


def dataset(root: Path, source: str) -> ds.Dataset:
    """The source's files as one pyarrow dataset (``date`` is a partition column); empty when none exist.

    The schema is the union of every file's schema (each file's footer is read), so files written
    before a source version added optional columns read with nulls in those columns. Raises pyarrow's
    ``ArrowInvalid`` when two files give one column different types.
    """
    directory = source_dir(root, source)
    if not directory.exists():
        return ds.dataset(pa.table({}))
    factory = ds.FileSystemDatasetFactory(
        fs.LocalFileSystem(),
        fs.FileSelector(str(directory), recursive=True),
        ds.ParquetFileFormat(),
        ds.FileSystemFactoryOptions(
            partition_base_dir=str(directory),
            partitioning=ds.HivePartitioning.discover(),
            exclude_invalid_files=True,
        ),
    )
    return factory.finish(factory.inspect(fragments=None))
