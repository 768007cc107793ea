"""Training examples from the lake: transactions joined with their chargeback labels, split by time.

Pure functions over pyarrow tables and numpy arrays; nothing here talks to the network. Reading
raises ``FailedPrecondition`` when the lake has no usable data, naming the source and the directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from aimesh.core import lake
from aimesh.core.errors import FailedPrecondition
from aimesh.training.features import PaymentRow

TRANSACTION_COLUMNS = (
    "event_id",
    "entity_key",
    "event_time",
    "customer_id",
    "amount",
    "merchant_id",
    "merchant_category",
    "country",
    "device_id",
)
"""What training reads of ``card_transactions``: the ids, the time and the payment's request context."""


@dataclass(frozen=True)
class LabelSpec:
    """Which events of which source mark a transaction as positive."""

    source: str = "chargebacks"
    field: str = "reason"
    positive_value: str = "fraud"
    join_field: str = "transaction_id"


def read_source(root: Path, source: str, columns: tuple[str, ...]) -> pa.Table:
    """The ``columns`` of every lake file of ``source``, deduplicated by ``event_id``.

    Raises ``FailedPrecondition`` when the source has no files or lacks one of the columns.
    """
    dataset = lake.dataset(root, source)
    missing = [c for c in columns if c not in dataset.schema.names]
    if len(dataset.schema.names) == 0:
        raise FailedPrecondition(f"the lake at {root} has no data for source {source!r}")
    if missing:
        raise FailedPrecondition(f"lake source {source!r} at {root} has no column(s) {', '.join(missing)}")
    table = dataset.to_table(columns=list(columns))
    if "event_id" in columns:
        table = _first_per_event_id(table)
    return table


def _first_per_event_id(table: pa.Table) -> pa.Table:
    """Drops repeated event ids (at-least-once upstreams), keeping the first occurrence."""
    ids = table.column("event_id").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    if len(first) == table.num_rows:
        return table
    return table.take(pa.array(np.sort(first)))


def positive_ids(labels: pa.Table, spec: LabelSpec) -> set[str]:
    """The join keys (transaction ids) of label events whose ``spec.field`` equals ``spec.positive_value``."""
    mask = pc.equal(labels.column(spec.field), spec.positive_value)
    return set(labels.filter(mask).column(spec.join_field).to_pylist())


def label_transactions(transactions: pa.Table, positives: set[str]) -> NDArray[np.float32]:
    """1.0 for each transaction whose ``event_id`` is in ``positives``, else 0.0, in table order."""
    ids = transactions.column("event_id").to_numpy(zero_copy_only=False)
    return np.isin(ids, np.asarray(sorted(positives), dtype=object)).astype(np.float32)


def maturity_cutoff(newest_event: datetime, maturity: timedelta) -> datetime:
    """Transactions strictly before this have had ``maturity`` to receive their chargeback."""
    return newest_event - maturity


def newest_event_time(*tables: pa.Table) -> datetime:
    """The latest ``event_time`` across ``tables``; raises ``FailedPrecondition`` when all are empty."""
    latest = [pc.max(t.column("event_time")).as_py() for t in tables if t.num_rows]
    if not latest:
        raise FailedPrecondition("the lake holds no events")
    newest: datetime = max(latest)
    return newest


def select_window(
    transactions: pa.Table, *, start: datetime | None, end: datetime | None, cutoff: datetime
) -> pa.Table:
    """Transactions with ``start <= event_time < min(end, cutoff)``, sorted by event time (stable)."""
    times = transactions.column("event_time")
    mask = pc.less(times, pa.scalar(cutoff, type=times.type))
    if end is not None:
        mask = pc.and_(mask, pc.less(times, pa.scalar(end, type=times.type)))
    if start is not None:
        mask = pc.and_(mask, pc.greater_equal(times, pa.scalar(start, type=times.type)))
    selected = transactions.filter(mask)
    return selected.take(pc.sort_indices(selected, sort_keys=[("event_time", "ascending"), ("event_id", "ascending")]))


def time_split(times: NDArray[np.int64], train_fraction: float) -> int:
    """Index splitting time-sorted ``times`` into train ``[:i]`` and eval ``[i:]``.

    The boundary moves back to the first row of its timestamp, so no instant is in both slices.
    Raises ``FailedPrecondition`` when either slice would be empty.
    """
    if not 0.0 < train_fraction < 1.0:
        raise FailedPrecondition(f"train_fraction must be in (0, 1), got {train_fraction}")
    if len(times) and np.any(np.diff(times) < 0):
        raise FailedPrecondition("time_split needs rows sorted by time")
    index = int(np.floor(len(times) * train_fraction))
    if 0 < index < len(times):
        index = int(np.searchsorted(times, times[index], side="left"))
    if index <= 0 or index >= len(times):
        raise FailedPrecondition(f"{len(times)} rows cannot be split by time into train and eval slices")
    return index


@dataclass(frozen=True)
class Examples:
    """Labelled payments in time order, ready for feature retrieval."""

    rows: list[PaymentRow]
    labels: NDArray[np.float32]
    times_us: NDArray[np.int64]
    newest_event: datetime
    cutoff: datetime


def load_examples(
    root: Path,
    *,
    events_source: str,
    labels: LabelSpec,
    maturity: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Examples:
    """Mature, labelled payments of ``events_source`` (see ``aimesh.training.params`` on maturity).

    Blocks on file reads; call it from a worker thread. Raises ``FailedPrecondition`` when the lake
    has no data for a source or no payment is older than the maturity cutoff.
    """
    transactions = read_source(root, events_source, TRANSACTION_COLUMNS)
    chargebacks = read_source(root, labels.source, ("event_time", labels.join_field, labels.field))
    newest = newest_event_time(transactions, chargebacks)
    cutoff = maturity_cutoff(newest, maturity)
    mature = select_window(transactions, start=start, end=end, cutoff=cutoff)
    if mature.num_rows == 0:
        raise FailedPrecondition(
            f"no {events_source} payment is older than {cutoff.isoformat()} (newest event {newest.isoformat()} "
            f"minus label_maturity_days={maturity.total_seconds() / 86400:g}); lower it or ingest more history"
        )
    cols = {name: mature.column(name).to_pylist() for name in TRANSACTION_COLUMNS}
    rows = [
        PaymentRow(
            card_id=cols["entity_key"][i],
            customer_id=cols["customer_id"][i],
            time=cols["event_time"][i],
            amount=float(cols["amount"][i]),
            merchant_id=cols["merchant_id"][i],
            merchant_category=cols["merchant_category"][i],
            country=cols["country"][i],
            device_id=cols["device_id"][i],
        )
        for i in range(mature.num_rows)
    ]
    times = pc.cast(mature.column("event_time"), pa.int64()).to_numpy()
    return Examples(
        rows=rows,
        labels=label_transactions(mature, positive_ids(chargebacks, labels)),
        times_us=np.asarray(times, dtype=np.int64),
        newest_event=newest,
        cutoff=cutoff,
    )
