"""Training rows from the lake: one source's records (those matching ``rows.filter``) with their labels,
the maturity cut and the split (by time, random, or leave-last-out per key entity).

Pure functions over pyarrow tables and numpy arrays; nothing here talks to the network. ``load_rows``
blocks on file reads (call it from a worker thread) and raises ``FailedPrecondition`` when the lake has
no usable rows, naming the source, the cut-off and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from aimesh.api.common.v1 import common_pb2
from aimesh.core import lake
from aimesh.core.errors import FailedPrecondition
from aimesh.core.signature import Scalar, value_type_of
from aimesh.training.spec import RunPlan


def read_source(root: Path, source: str, columns: list[str]) -> pa.Table:
    """The ``columns`` of every lake file of ``source`` (``event_id`` and ``event_time`` always),
    deduplicated by ``event_id`` (at-least-once upstreams), first occurrence kept."""
    wanted = list(dict.fromkeys(["event_id", "event_time", *columns]))
    dataset = lake.dataset(root, source)
    if missing := [c for c in wanted if c not in dataset.schema.names]:
        raise FailedPrecondition(f"lake source {source!r} at {root} has no column(s) {', '.join(missing)}")
    table = dataset.to_table(columns=wanted)
    ids = table.column("event_id").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    return table if len(first) == table.num_rows else table.take(pa.array(np.sort(first)))


def newest_event_time(*tables: pa.Table) -> datetime:
    """The latest ``event_time`` across ``tables``; ``FailedPrecondition`` when all are empty."""
    latest = [pc.max(t.column("event_time")).as_py() for t in tables if t.num_rows]
    if not latest:
        raise FailedPrecondition("the lake holds no events for this run")
    newest: datetime = max(latest)
    return newest


def select_window(rows: pa.Table, *, start: datetime | None, end: datetime | None, cutoff: datetime) -> pa.Table:
    """Rows with ``start <= event_time < min(end, cutoff)``, sorted by (event time, event id)."""
    times = rows.column("event_time")
    mask = pc.less(times, pa.scalar(cutoff, type=times.type))
    if end is not None:
        mask = pc.and_(mask, pc.less(times, pa.scalar(end, type=times.type)))
    if start is not None:
        mask = pc.and_(mask, pc.greater_equal(times, pa.scalar(start, type=times.type)))
    selected = rows.filter(mask)
    return selected.take(pc.sort_indices(selected, sort_keys=[("event_time", "ascending"), ("event_id", "ascending")]))


def _as_strings(column: pa.ChunkedArray) -> list[str | None]:
    return [None if v is None else str(v) for v in column.to_pylist()]


def filter_rows(rows: pa.Table, accepted: Mapping[str, str]) -> pa.Table:
    """Rows whose every ``accepted`` field, as a string, is one of its comma-separated values (a null
    field matches nothing); all rows when ``accepted`` is empty."""
    if not accepted or rows.num_rows == 0:
        return rows
    keep = np.ones(rows.num_rows, dtype=bool)
    for field, values in accepted.items():
        allowed = set(values.split(","))
        keep &= np.asarray([v in allowed for v in _as_strings(rows.column(field))], dtype=bool)
    return rows.filter(pa.array(keep))


def binary_labels(rows: pa.Table, plan: RunPlan, labels: pa.Table | None) -> NDArray[np.float32]:
    """1.0 where the row's (or a joined label event's) target is one of ``positive_values``, else 0.0."""
    positive = set(plan.spec.label.positive_values)
    label = plan.spec.label
    if labels is None:
        return np.asarray([v in positive for v in _as_strings(rows.column(label.target_field))], dtype=np.float32)
    keys = _as_strings(labels.column(label.join_field))
    targets = _as_strings(labels.column(label.target_field))
    hits = {k for k, t in zip(keys, targets, strict=True) if t in positive}
    row_keys = _as_strings(rows.column(label.row_field or "event_id"))
    return np.asarray([k in hits for k in row_keys], dtype=np.float32)


def numeric_labels(rows: pa.Table, plan: RunPlan, labels: pa.Table | None) -> NDArray[np.float64]:
    """The row's numeric target (a joined source: its newest label event's), NaN where there is none."""
    label = plan.spec.label
    if labels is None:
        values = pc.cast(rows.column(label.target_field), pa.float64()).to_pylist()
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    ordered = labels.take(pc.sort_indices(labels, sort_keys=[("event_time", "ascending")]))
    newest = dict(
        zip(
            _as_strings(ordered.column(label.join_field)),
            pc.cast(ordered.column(label.target_field), pa.float64()).to_pylist(),
            strict=True,
        )
    )
    row_keys = _as_strings(rows.column(label.row_field or "event_id"))
    return np.asarray([np.nan if newest.get(k) is None else newest[k] for k in row_keys], dtype=np.float64)


def time_split(times: NDArray[np.int64], train_fraction: float) -> NDArray[np.bool_]:
    """Train mask over time-sorted ``times``: the oldest ``train_fraction``, moved back so no instant is in
    both slices. Raises ``FailedPrecondition`` when either slice would be empty."""
    if len(times) and np.any(np.diff(times) < 0):
        raise FailedPrecondition("time_split needs rows sorted by time")
    index = int(np.floor(len(times) * train_fraction))
    if 0 < index < len(times):
        index = int(np.searchsorted(times, times[index], side="left"))
    if index <= 0 or index >= len(times):
        raise FailedPrecondition(f"{len(times)} rows cannot be split by time into train and eval slices")
    mask = np.zeros(len(times), dtype=bool)
    mask[:index] = True
    return mask


def leave_last_out_split(keys: Sequence[str | None]) -> NDArray[np.bool_]:
    """Train mask over time-sorted rows: each key's newest (last) row evaluates, every other row trains
    (rows without a key train). Raises ``FailedPrecondition`` when either slice would be empty."""
    last: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            last[key] = i
    mask = np.ones(len(keys), dtype=bool)
    mask[list(last.values())] = False
    if mask.all() or not mask.any():
        raise FailedPrecondition(
            f"{len(keys)} rows of {len(last)} key entities cannot be split leave-last-out into train and eval "
            "slices (every key's newest row evaluates, its older rows train)"
        )
    return mask


def random_split(n: int, train_fraction: float, seed: int) -> NDArray[np.bool_]:
    """Train mask of a seeded random ``train_fraction`` of ``n`` rows; ``FailedPrecondition`` when a slice is empty."""
    count = int(np.floor(n * train_fraction))
    if count <= 0 or count >= n:
        raise FailedPrecondition(f"{n} rows cannot be split into train and eval slices")
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:count]] = True
    return mask


@dataclass(frozen=True)
class Rows:
    """Labelled training rows in time order, ready for feature retrieval."""

    times: list[datetime]
    entity_ids: list[dict[str, str]]
    context: list[dict[str, Scalar]]
    context_types: dict[str, common_pb2.ValueType]
    labels: NDArray[np.float32]
    times_us: NDArray[np.int64]
    newest_event: datetime
    cutoff: datetime
    targets: tuple[str, ...] = ()
    """``LABEL_KIND_NEXT_ITEM``: each row's target string (``labels`` is all zeros until the pipeline maps
    them to vocabulary indexes); empty for other label kinds."""


def _context_type(column: pa.ChunkedArray) -> common_pb2.ValueType:
    if pa.types.is_boolean(column.type):
        return common_pb2.VALUE_TYPE_BOOL
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return common_pb2.VALUE_TYPE_DOUBLE
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return common_pb2.VALUE_TYPE_STRING
    first = next((v for v in column.to_pylist() if v is not None), "")
    return value_type_of(first)


def load_rows(root: Path, plan: RunPlan, *, start: datetime | None = None, end: datetime | None = None) -> Rows:
    """The run's mature, labelled rows (see the module doc); blocks on file reads."""
    spec = plan.spec
    label = spec.label
    columns = [*spec.rows.entity_fields, *spec.rows.context_fields, *spec.rows.filter]
    if label.source:
        columns.append(label.row_field or "event_id")
    else:
        columns.append(label.target_field)
    rows = read_source(root, spec.rows.source, columns)
    labels = read_source(root, label.source, [label.join_field, label.target_field]) if label.source else None
    newest = newest_event_time(rows, *([labels] if labels is not None else []))
    cutoff = newest - plan.maturity
    rows = select_window(filter_rows(rows, spec.rows.filter), start=start, end=end, cutoff=cutoff)
    targets: tuple[str, ...] = ()
    if plan.binary:
        y = binary_labels(rows, plan, labels)
    elif plan.next_item:
        strings = _as_strings(rows.column(label.target_field))
        rows = rows.filter(pa.array([t is not None and t != "" for t in strings], type=pa.bool_()))
        targets = tuple(t for t in strings if t)
        y = np.zeros(len(targets), dtype=np.float32)
    else:
        values = numeric_labels(rows, plan, labels)
        keep = ~np.isnan(values)
        rows = rows.filter(pa.array(keep))
        y = values[keep].astype(np.float32)
    if rows.num_rows == 0:
        matching = f" matching spec.rows.filter {dict(spec.rows.filter)}" if spec.rows.filter else ""
        raise FailedPrecondition(
            f"no labelled {spec.rows.source} row{matching} is older than {cutoff.isoformat()} (newest event "
            f"{newest.isoformat()} minus the label maturity {plan.maturity}); lower spec.label.maturity or "
            "ingest more history"
        )
    entity_columns = {f: _as_strings(rows.column(f)) for f in spec.rows.entity_fields}
    context_columns = {f: rows.column(f).to_pylist() for f in spec.rows.context_fields}
    entity_ids: list[dict[str, str]] = [
        {spec.rows.entity_fields[f]: ids[i] or "" for f, ids in entity_columns.items() if ids[i] is not None}
        for i in range(rows.num_rows)
    ]
    context = [{f: values[i] for f, values in context_columns.items()} for i in range(rows.num_rows)]
    return Rows(
        times=rows.column("event_time").to_pylist(),
        entity_ids=entity_ids,
        context=context,
        context_types={f: _context_type(rows.column(f)) for f in spec.rows.context_fields},
        labels=y,
        times_us=np.asarray(pc.cast(rows.column("event_time"), pa.int64()).to_numpy(), dtype=np.int64),
        newest_event=newest,
        cutoff=cutoff,
        targets=targets,
    )
