"""Offline (point-in-time) retrieval: entity histories from the lake, cut at each row's time.

Reads the ``card_transactions`` dataset through ``aimesh.core.lake`` with a pyarrow filter, so only
the rows of the requested cards and customers (and only the needed columns) are ever materialised.
Duplicates of an event id within an entity are counted once, as in the online store.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from aimesh.core import lake
from aimesh.feature.aggregation import EMPTY_HISTORY, EntityHistory, HistoryEvent, micros
from aimesh.feature.definitions import CARD, CARD_TRANSACTIONS, CUSTOMER, LONGEST_WINDOW
from aimesh.feature.records import Transaction
from aimesh.feature.store import SEEN_FIELDS, EntityRef

LAKE_COLUMNS = ("event_id", "entity_key", "event_time", "customer_id", "amount", "merchant_id", "country", "device_id")


@dataclass(frozen=True)
class _FirstSeenBefore:
    """``value in self``: did ``value`` first appear strictly before ``at_us``."""

    first_seen: Mapping[str, int]
    at_us: int

    def __contains__(self, value: object) -> bool:
        first = self.first_seen.get(value) if isinstance(value, str) else None
        return first is not None and first < self.at_us


@dataclass
class EntityTimeline:
    """All of one entity's transactions, by time, answering ``history_before(t)`` in O(log n + window)."""

    events: list[HistoryEvent] = field(default_factory=list)
    first_seen: dict[str, dict[str, int]] = field(default_factory=dict)
    _times: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, txns: Iterable[Transaction]) -> EntityTimeline:
        unique = {t.event_id: t for t in txns}
        ordered = sorted(unique.values(), key=lambda t: (t.ts_us, t.event_id))
        first_seen: dict[str, dict[str, int]] = {name: {} for name in SEEN_FIELDS}
        for txn in ordered:
            for name in SEEN_FIELDS:
                first_seen[name].setdefault(getattr(txn, name), txn.ts_us)
        events = [t.history_event() for t in ordered]
        return cls(events, first_seen, [e.ts_us for e in events])

    def history_before(self, at_us: int) -> EntityHistory:
        """The entity's history strictly before ``at_us`` (recent = the longest window)."""
        end = bisect.bisect_left(self._times, at_us)
        if end == 0:
            return EMPTY_HISTORY
        start = bisect.bisect_right(self._times, at_us - micros(LONGEST_WINDOW))
        seen = {name: _FirstSeenBefore(values, at_us) for name, values in self.first_seen.items()}
        return EntityHistory(self.events[start:end], seen, self._times[end - 1])


def read_transactions(
    lake_root: Path, cards: Iterable[str], customers: Iterable[str], *, before_us: int
) -> list[Transaction]:
    """Every lake transaction of the given cards or customers with event time before ``before_us``
    (blocking: run it in a worker thread). Returns [] when the dataset has no files yet.
    """
    dataset = lake.dataset(lake_root, CARD_TRANSACTIONS)
    if not set(LAKE_COLUMNS) <= set(dataset.schema.names):
        return []
    wanted = ds.field("entity_key").isin(pa.array(sorted(set(cards)), pa.string())) | ds.field("customer_id").isin(
        pa.array(sorted(set(customers)), pa.string())
    )
    until = pa.scalar(before_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    table = dataset.to_table(columns=list(LAKE_COLUMNS), filter=wanted & (ds.field("event_time") < until))
    ts_us = pc.cast(table.column("event_time"), pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    cols = {name: table.column(name).to_pylist() for name in LAKE_COLUMNS if name != "event_time"}
    return [
        Transaction(
            event_id=cols["event_id"][i],
            card_id=cols["entity_key"][i],
            customer_id=cols["customer_id"][i],
            ts_us=ts_us[i],
            amount=float(cols["amount"][i]),
            merchant_id=cols["merchant_id"][i],
            country=cols["country"][i],
            device_id=cols["device_id"][i],
        )
        for i in range(table.num_rows)
    ]


def timelines(
    txns: Sequence[Transaction], cards: Iterable[str], customers: Iterable[str]
) -> dict[EntityRef, EntityTimeline]:
    """One timeline per requested card and customer (empty when it has no transaction)."""
    grouped: dict[EntityRef, list[Transaction]] = {(CARD, c): [] for c in cards}
    grouped.update({(CUSTOMER, c): [] for c in customers})
    for txn in txns:
        for key in ((CARD, txn.card_id), (CUSTOMER, txn.customer_id)):
            if key in grouped:
                grouped[key].append(txn)
    return {key: EntityTimeline.of(group) for key, group in grouped.items()}
