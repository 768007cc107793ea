"""A bounded local spool on disk for Kafka records that must not be lost while the broker is away.

``Spool`` is a FIFO of records in one SQLite file (WAL journal, ``synchronous=FULL``, exclusive
locking: one process per file). Contract:

- ``put`` returns True once the record is durable in the file (it survives kill -9 and power loss),
  False when the bound rejected it. Concurrent ``put`` calls are written in one transaction (group
  commit). All file work runs on one worker thread, never on the event loop.
- Bounds: ``max_bytes`` (the records' topic, key, value and header bytes; the file itself is larger by
  SQLite's overhead) and ``max_records``. When a record does not fit, ``when_full`` decides:
  ``drop_newest`` (the default) rejects the new record, so a record the spool accepted is never
  dropped by it; ``drop_oldest`` deletes the oldest records until it fits. A record larger than
  ``max_bytes`` on its own is always rejected. Every drop is counted in ``aimesh_spool_dropped_total``.
- ``head(n)`` returns the oldest records with their ids; ``delete(ids)`` removes them. A drain deletes
  a record only after Kafka acknowledged it: a crash between the acknowledgement and the delete
  re-sends the record after the restart (a duplicate with the same event id, which consumers dedupe;
  never a loss).
- Gauges ``aimesh_spool_records`` and ``aimesh_spool_bytes`` show the depth; counters
  ``aimesh_spool_spooled_total`` and ``aimesh_spool_drained_total`` the flow (label ``spool``).

``SpoolingSender`` puts a spool in front of an ``EventProducer`` (see its docstring).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message
from prometheus_client import Counter, Gauge

from aimesh.core.events import event_record
from aimesh.core.producer import is_record_error

log = logging.getLogger(__name__)

T = TypeVar("T")

SPOOL_RECORDS = Gauge("aimesh_spool_records", "Records waiting in the local spool", ["spool"])
SPOOL_BYTES = Gauge("aimesh_spool_bytes", "Record bytes waiting in the local spool", ["spool"])
SPOOLED = Counter("aimesh_spool_spooled_total", "Records written to the local spool", ["spool"])
DRAINED = Counter("aimesh_spool_drained_total", "Spooled records acknowledged by Kafka and deleted", ["spool"])
DROPPED = Counter("aimesh_spool_dropped_total", "Records the full spool rejected or evicted", ["spool", "reason"])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    size INTEGER NOT NULL
)
"""


class WhenFull(StrEnum):
    """What a full spool does with a record that does not fit."""

    DROP_NEWEST = "drop_newest"
    DROP_OLDEST = "drop_oldest"


@dataclass(frozen=True)
class SpooledRecord:
    """One Kafka record as the producer would send it."""

    topic: str
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        """The bytes counted against ``max_bytes``."""
        return (
            len(self.topic)
            + len(self.value)
            + len(self.key or b"")
            + sum(len(name) + len(value) for name, value in self.headers)
        )


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[name, value.decode("latin-1")] for name, value in headers])


def _decode_headers(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(name), str(value).encode("latin-1")) for name, value in json.loads(text))


class Spool:
    """The SQLite-backed FIFO of ``SpooledRecord`` (see the module doc). Use ``await Spool.open(...)``."""

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        max_bytes: int = 512 * 1024 * 1024,
        max_records: int = 1_000_000,
        when_full: WhenFull = WhenFull.DROP_NEWEST,
    ) -> None:
        self.path = path
        self.name = name
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.when_full = WhenFull(when_full)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"spool-{name}")
        self._db: sqlite3.Connection | None = None
        self._records = 0
        self._bytes = 0
        self._waiting: list[tuple[SpooledRecord, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.dropped = 0
        """Records rejected or evicted because the spool was full."""
        self._gauges = (SPOOL_RECORDS.labels(name), SPOOL_BYTES.labels(name))
        self._spooled = SPOOLED.labels(name)
        self._drained = DRAINED.labels(name)

    @classmethod
    async def open(cls, path: Path, *, name: str, **bounds: Any) -> Spool:
        """Open (creating it and its directory) the spool file at ``path``; raises ``sqlite3.Error`` when the
        file is corrupt or held by another process."""
        spool = cls(path, name=name, **bounds)
        await spool._run(spool._open)
        return spool

    @property
    def depth(self) -> int:
        """Records in the spool now (written ones; not those still waiting for their transaction)."""
        return self._records

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def empty(self) -> bool:
        """True when no record is in the spool or on its way into it."""
        return self._records == 0 and not self._waiting and (self._writer is None or self._writer.done())

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            db.close()
            raise sqlite3.OperationalError(
                f"spool {self.path} is held by another process ({exc}): each process needs its own spool "
                "directory (set <SERVICE>_SPOOL_DIR, or give each replica its own <SERVICE>_DATA_DIR)"
            ) from exc
        db.execute("PRAGMA synchronous=FULL")
        db.execute(_SCHEMA)
        self._records, self._bytes = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records").fetchone()
        self._db = db
        self._publish_gauges()
        if self._records:
            log.info(
                "spool holds %d records from before the restart; they will be drained",
                self._records,
                extra={"spool.name": self.name, "spool.path": str(self.path)},
            )

    def _publish_gauges(self) -> None:
        self._gauges[0].set(self._records)
        self._gauges[1].set(self._bytes)

    async def close(self) -> None:
        """Finish pending writes and close the file (what it holds stays for the next ``open``)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def put(self, record: SpooledRecord) -> bool:
        """Append ``record``; True once it is durable, False when the bound rejected it (counted, logged).

        Raises ``sqlite3.Error`` when the file cannot be written (disk full, I/O error).
        """
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((record, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name=f"spool-writer:{self.name}")
        return await fut

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                stored = await self._run(self._insert, [record for record, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), ok in zip(batch, stored, strict=True):
                if not fut.done():
                    fut.set_result(ok)

    def _insert(self, records: list[SpooledRecord]) -> list[bool]:
        db = self._require_db()
        stored: list[bool] = []
        evicted = rejected = too_large = 0
        records_now, bytes_now = self._records, self._bytes
        db.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                size = record.size
                if size > self.max_bytes:
                    stored.append(False)
                    too_large += 1
                    continue
                if records_now + 1 > self.max_records or bytes_now + size > self.max_bytes:
                    if self.when_full is WhenFull.DROP_NEWEST:
                        stored.append(False)
                        rejected += 1
                        continue
                    while records_now and (records_now + 1 > self.max_records or bytes_now + size > self.max_bytes):
                        oldest_id, oldest_size = db.execute(
                            "SELECT id, size FROM records ORDER BY id LIMIT 1"
                        ).fetchone()
                        db.execute("DELETE FROM records WHERE id = ?", (oldest_id,))
                        records_now -= 1
                        bytes_now -= oldest_size
                        evicted += 1
                db.execute(
                    "INSERT INTO records (topic, key, value, headers, size) VALUES (?, ?, ?, ?, ?)",
                    (record.topic, record.key, record.value, _encode_headers(record.headers), size),
                )
                records_now += 1
                bytes_now += size
                stored.append(True)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._records, self._bytes = records_now, bytes_now
        self._publish_gauges()
        self._spooled.inc(sum(stored))
        if evicted or rejected or too_large:
            self.dropped += evicted + rejected + too_large
            for reason, n in (("evicted_oldest", evicted), ("rejected_newest", rejected), ("too_large", too_large)):
                if n:
                    DROPPED.labels(self.name, reason).inc(n)
            log.warning(
                "spool full: %d records dropped (%s; %d larger than the whole spool)",
                evicted + rejected + too_large,
                self.when_full.value,
                too_large,
                extra={"spool.name": self.name, "spool.records": records_now, "spool.bytes": bytes_now},
            )
        return stored

    def _require_db(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError(f"spool {self.name} is not open")
        return self._db

    async def head(self, n: int) -> list[tuple[int, SpooledRecord]]:
        """The ``n`` oldest records with their ids, oldest first."""
        return await self._run(self._head, n)

    def _head(self, n: int) -> list[tuple[int, SpooledRecord]]:
        rows = (
            self._require_db()
            .execute("SELECT id, topic, key, value, headers FROM records ORDER BY id LIMIT ?", (n,))
            .fetchall()
        )
        return [
            (row_id, SpooledRecord(topic, bytes(value), None if key is None else bytes(key), _decode_headers(headers)))
            for row_id, topic, key, value, headers in rows
        ]

    async def delete(self, ids: Sequence[int]) -> None:
        """Remove the records ``ids`` (acknowledged by Kafka); ids no longer there are ignored."""
        if ids:
            await self._run(self._delete, list(ids))

    def _delete(self, ids: list[int]) -> None:
        db = self._require_db()
        db.execute("BEGIN IMMEDIATE")
        try:
            marks = ",".join("?" * len(ids))
            count, size = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records WHERE id IN ({marks})",  # noqa: S608
                ids,
            ).fetchone()
            db.execute(f"DELETE FROM records WHERE id IN ({marks})", ids)  # noqa: S608
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._records -= count
        self._bytes -= size
        self._publish_gauges()
        self._drained.inc(count)


class RawSender(Protocol):
    """The part of ``EventProducer`` a ``SpoolingSender`` sends through."""

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


class Delivery(StrEnum):
    """How a ``SpoolingSender`` took care of a record."""

    ACKNOWLEDGED = "acknowledged"
    SPOOLED = "spooled"


class SpoolFull(Exception):
    """The spool rejected a record because it was full (counted in ``aimesh_spool_dropped_total``)."""


class SpoolingSender:
    """An ``EventSender`` whose records survive a broker outage: Kafka first, the spool when Kafka fails.

    The future of ``send_event``/``send_raw`` resolves to ``Delivery.ACKNOWLEDGED`` when Kafka
    acknowledged the record within ``spool_after_s``, or to ``Delivery.SPOOLED`` once the record is
    durable in the spool (the send failed, or was not acknowledged in time: it may still be written by
    the producer, a duplicate with the same event id). It fails with ``SpoolFull`` when the spool rejected
    the record, and with the record's own error (too large, invalid topic), which spooling cannot cure.

    While the spool holds records (or one is on its way there) new records go straight to the spool
    behind them, so the records of one sender keep their order across an outage (except the few in
    flight when it began). ``run()`` drains: it sends the oldest ``drain_batch`` records, waits for
    their acknowledgements, deletes the acknowledged ones, and repeats until the spool is empty; a batch
    with a failure is retried after ``retry_interval_s``. ``stop()`` makes ``run()`` return; records
    still spooled stay on disk for the next process.
    """

    def __init__(
        self,
        producer: RawSender,
        spool: Spool,
        *,
        source: str,
        spool_after_s: float = 5.0,
        drain_batch: int = 500,
        retry_interval_s: float = 1.0,
    ) -> None:
        self._producer = producer
        self.spool = spool
        self.source = source
        """The CloudEvents ``ce_source`` of ``send_event`` (the service name)."""
        self._spool_after_s = spool_after_s
        self._drain_batch = drain_batch
        self._retry_interval_s = retry_interval_s
        self._spooling = not spool.empty
        self._inbound = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._acking: dict[asyncio.Task[Any], tuple[SpooledRecord, asyncio.Future[Any], asyncio.Future[Any]]] = {}
        """Tasks waiting for Kafka's acknowledgement -> (record, outcome, ack): what ``spool_unacknowledged``
        takes over."""
        self.acknowledged = 0
        self.spooled = 0

    async def send_event(
        self,
        topic: str,
        message: Message,
        *,
        key: str | bytes | None,
        event_id: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[Any]:
        """``EventSender.send_event`` (CloudEvents headers, as ``EventProducer`` writes them)."""
        value, headers = event_record(message, source=self.source, event_id=event_id, extra=extra_headers)
        return await self.send_raw(topic, value, key=key, headers=headers)

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        """Start delivering one record; the future resolves to a ``Delivery`` (see the class doc)."""
        key_bytes = key.encode() if isinstance(key, str) else key
        record = SpooledRecord(topic, value, key_bytes, tuple(headers))
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._spooling:
            self._spool_soon(record, outcome)
            return outcome
        try:
            ack = await self._producer.send_raw(topic, value, key=key_bytes, headers=headers)
        except Exception as exc:
            if is_record_error(exc):
                raise
            self._spool_soon(record, outcome, exc)
            return outcome
        self._track(self._await_ack(record, ack, outcome))
        return outcome

    def _begin_spooling(self, cause: BaseException | None) -> None:
        """Route new records to the spool; logs once per outage (when Kafka first failed)."""
        if not self._spooling and cause is not None:
            log.warning(
                "Kafka send failed; spooling records until Kafka acknowledges again: %r",
                cause,
                extra={"spool.name": self.spool.name},
            )
        self._spooling = True
        self._inbound += 1

    def _spool_soon(
        self, record: SpooledRecord, outcome: asyncio.Future[Any], cause: BaseException | None = None
    ) -> None:
        self._begin_spooling(cause)
        self._track(self._spool_record(record, outcome))

    @property
    def _empty(self) -> bool:
        return self._inbound == 0 and self.spool.empty

    def _track(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_ack(self, record: SpooledRecord, ack: asyncio.Future[Any], outcome: asyncio.Future[Any]) -> None:
        me = asyncio.current_task()
        assert me is not None  # started by _track: always a task
        self._acking[me] = (record, outcome, ack)
        try:
            await asyncio.wait_for(asyncio.shield(ack), timeout=self._spool_after_s)
        except Exception as exc:
            self._acking.pop(me, None)
            if is_record_error(exc):
                if not outcome.done():
                    outcome.set_exception(exc)
                return
            ack.cancel()  # withdraws it from the producer's re-sends; the spool owns it now
            self._begin_spooling(exc)
            await self._spool_record(record, outcome)
            return
        self._acking.pop(me, None)
        self.acknowledged += 1
        if not outcome.done():
            outcome.set_result(Delivery.ACKNOWLEDGED)

    async def spool_unacknowledged(self) -> int:
        """Write every record still waiting for Kafka's acknowledgement to the spool now, in send order, and
        resolve its future to ``Delivery.SPOOLED``; returns how many. Called at shutdown before the spool
        closes (the producer is about to close: those records would otherwise be lost). Such a record may
        still reach Kafka from the producer's last flush too: a duplicate with the same event id."""
        pending = list(self._acking.items())
        self._acking.clear()
        for task, _ in pending:
            task.cancel()
        taken = 0
        for task, (record, outcome, ack) in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if outcome.done():
                continue
            ack.cancel()
            self._begin_spooling(None)
            await self._spool_record(record, outcome)
            taken += 1
        return taken

    async def _spool_record(self, record: SpooledRecord, outcome: asyncio.Future[Any]) -> None:
        try:
            stored = await self.spool.put(record)
        except Exception as exc:
            self._inbound -= 1
            log.error("spool write failed; record lost: %r", exc, extra={"spool.name": self.spool.name})
            if not outcome.done():
                outcome.set_exception(exc)
            return
        self._inbound -= 1
        self._wake.set()
        if not stored:
            if not outcome.done():
                outcome.set_exception(SpoolFull(f"spool {self.spool.name} is full"))
            return
        self.spooled += 1
        if not outcome.done():
            outcome.set_result(Delivery.SPOOLED)

    async def run(self) -> None:
        """Drain the spool whenever it holds records, until ``stop()``."""
        while not self._stopping.is_set():
            self._wake.clear()
            if not self._empty:
                drained_all = await self.drain_once()
                if not drained_all:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=self._retry_interval_s)
                    continue
            elif self._spooling:
                self._spooling = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._retry_interval_s)

    async def stop(self) -> None:
        """Ask ``run`` to return; waits for records on their way into the spool."""
        self._stopping.set()
        self._wake.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self._spool_after_s + 1.0)

    async def drain_once(self) -> bool:
        """Send spooled records oldest first until the spool is empty; False at the first batch with a failure.

        A record is deleted only after Kafka acknowledged it. Records with their own permanent error
        (too large, invalid topic) are deleted and counted as dropped, as they can never be delivered.
        """
        while rows := await self.spool.head(self._drain_batch):
            acks: list[asyncio.Future[Any]] = []
            try:
                for _, record in rows:
                    acks.append(
                        await self._producer.send_raw(
                            record.topic, record.value, key=record.key, headers=record.headers
                        )
                    )
            except Exception as exc:
                log.info("spool drain paused, Kafka send failed: %r", exc, extra={"spool.name": self.spool.name})
                for ack in acks:
                    ack.cancel()
                return False
            results = await asyncio.gather(
                *(asyncio.wait_for(ack, timeout=self._spool_after_s) for ack in acks), return_exceptions=True
            )
            done = [row_id for (row_id, _), r in zip(rows, results, strict=True) if not isinstance(r, BaseException)]
            hopeless = [
                row_id
                for (row_id, _), r in zip(rows, results, strict=True)
                if isinstance(r, BaseException) and is_record_error(r) and not isinstance(r, asyncio.CancelledError)
            ]
            await self.spool.delete(done + hopeless)
            if hopeless:
                self.spool.dropped += len(hopeless)
                DROPPED.labels(self.spool.name, "undeliverable").inc(len(hopeless))
                log.error("%d spooled records can never be delivered; dropped", len(hopeless))
            if len(done) + len(hopeless) < len(rows):
                failure = next(r for r in results if isinstance(r, BaseException))
                log.info("spool drain paused: %r", failure, extra={"spool.name": self.spool.name})
                return False
        if self._empty:
            if self._spooling:
                log.info("spool drained; sending to Kafka directly again", extra={"spool.name": self.spool.name})
            self._spooling = False
        return True
