"""Spool and SpoolingSender: durable FIFO on disk, explicit bounds, drain deletes only after the ack."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from aimesh.api.inference.v1 import events_pb2
from aimesh.core.settings import ServiceSettings
from aimesh.core.spool import Delivery, Spool, SpooledRecord, SpoolFull, SpoolingSender, WhenFull
from aimesh.core.testing import RecordingSender

REPO = Path(__file__).resolve().parents[3]


def record(i: int, size: int = 10) -> SpooledRecord:
    return SpooledRecord("t", f"{i:0{size}d}".encode(), b"k" if i % 2 else None, (("ce_id", f"e{i}".encode()),))


async def test_records_survive_a_reopen_in_order_with_keys_and_headers(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t1")
    binary = SpooledRecord("t", bytes(range(256)), bytes(range(255, -1, -1)), (("h", bytes(range(256))),))
    assert all([await spool.put(record(i)) for i in range(5)]) and await spool.put(binary)
    await spool.close()
    again = await Spool.open(tmp_path / "s.db", name="t1")
    assert (again.depth, again.bytes) == (6, sum(record(i).size for i in range(5)) + binary.size)
    rows = await again.head(10)
    assert [r for _, r in rows] == [*(record(i) for i in range(5)), binary]
    await again.delete([rows[0][0], rows[2][0]])
    assert [r.value for _, r in await again.head(2)] == [record(1).value, record(3).value]
    assert again.depth == 4
    await again.close()


async def test_concurrent_puts_are_one_group_commit(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t2")
    assert all(await asyncio.gather(*(spool.put(record(i)) for i in range(200))))
    assert [r.value for _, r in await spool.head(500)] == [record(i).value for i in range(200)]
    await spool.close()


async def test_drop_newest_rejects_what_does_not_fit_and_counts_it(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t3", max_records=3, max_bytes=10_000)
    assert [await spool.put(record(i)) for i in range(5)] == [True, True, True, False, False]
    assert [r for _, r in await spool.head(10)] == [record(0), record(1), record(2)]
    assert spool.dropped == 2
    by_bytes = await Spool.open(tmp_path / "b.db", name="t3b", max_bytes=3 * record(0).size + 1)
    assert [await by_bytes.put(record(i)) for i in range(4)] == [True, True, True, False]
    assert await by_bytes.put(record(9, size=1000)) is False, "larger than the whole spool"
    await spool.close()
    await by_bytes.close()


async def test_drop_oldest_evicts_the_oldest_records(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t4", max_records=3, when_full=WhenFull.DROP_OLDEST)
    assert all([await spool.put(record(i)) for i in range(5)])
    assert [r for _, r in await spool.head(10)] == [record(2), record(3), record(4)]
    assert (spool.dropped, spool.depth) == (2, 3)
    await spool.close()


async def test_sender_spools_while_kafka_fails_then_drains_in_order(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t5")
    kafka = RecordingSender(fail=True)
    sender = SpoolingSender(kafka, spool, retry_interval_s=0.02, source="test")
    outcomes = [
        await sender.send_event("p", events_pb2.Prediction(event_id=f"e{i}"), key="k", event_id=f"e{i}")
        for i in range(20)
    ]
    assert await asyncio.gather(*outcomes) == [Delivery.SPOOLED] * 20
    assert spool.depth == 20 and kafka.raw == []
    drainer = asyncio.create_task(sender.run())
    await asyncio.sleep(0.1)
    assert spool.depth == 20, "nothing is deleted while Kafka fails"
    kafka.fail = False
    for _ in range(200):
        if spool.empty:
            break
        await asyncio.sleep(0.01)
    assert [dict(r.headers)["ce_id"] for r in kafka.raw] == [f"e{i}".encode() for i in range(20)]
    await asyncio.sleep(0.05)
    direct = await sender.send_event("p", events_pb2.Prediction(event_id="after"), key="k", event_id="after")
    assert await direct == Delivery.ACKNOWLEDGED
    await sender.stop()
    await asyncio.wait_for(drainer, 2.0)
    await spool.close()
    assert (sender.spooled, sender.acknowledged) == (20, 1)


async def test_new_records_queue_behind_spooled_ones(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t6")
    kafka = RecordingSender(fail_times=1)
    sender = SpoolingSender(kafka, spool, source="test")
    assert await (await sender.send_raw("p", b"0", key=None, headers=())) == Delivery.SPOOLED
    later = [await sender.send_raw("p", str(i).encode(), key=None, headers=()) for i in range(1, 5)]
    assert await asyncio.gather(*later) == [Delivery.SPOOLED] * 4, "Kafka is fine again, but order holds"
    assert await sender.drain_once()
    assert [r.value for r in kafka.raw] == [str(i).encode() for i in range(5)]
    await spool.close()


async def test_an_ack_that_never_comes_is_spooled_after_the_timeout(tmp_path: Path) -> None:
    class Silent(RecordingSender):
        def __init__(self) -> None:
            super().__init__()
            self.acks: list[asyncio.Future[Any]] = []

        async def send_raw(self, topic: str, value: bytes, *, key: Any, headers: Any) -> asyncio.Future[Any]:
            self.acks.append(asyncio.get_running_loop().create_future())
            return self.acks[-1]

    spool = await Spool.open(tmp_path / "s.db", name="t7")
    kafka = Silent()
    sender = SpoolingSender(kafka, spool, spool_after_s=0.05, source="test")
    outcome = await sender.send_raw("p", b"x", key=None, headers=())
    assert await asyncio.wait_for(outcome, 2.0) == Delivery.SPOOLED
    assert kafka.acks[0].cancelled(), "the producer no longer re-sends it: the spool owns it"
    await spool.close()


async def test_records_awaiting_acknowledgement_at_shutdown_are_spooled_in_order(tmp_path: Path) -> None:
    class Silent(RecordingSender):
        def __init__(self) -> None:
            super().__init__()
            self.acks: list[asyncio.Future[Any]] = []

        async def send_raw(self, topic: str, value: bytes, *, key: Any, headers: Any) -> asyncio.Future[Any]:
            self.acks.append(asyncio.get_running_loop().create_future())
            return self.acks[-1]

    spool = await Spool.open(tmp_path / "s.db", name="t8")
    kafka = Silent()
    sender = SpoolingSender(kafka, spool, spool_after_s=60.0, source="test")
    outcomes = [await sender.send_raw("p", f"r{i}".encode(), key=None, headers=()) for i in range(5)]
    kafka.acks[1].set_result(None)
    await asyncio.sleep(0.01)
    assert await sender.spool_unacknowledged() == 4
    assert [await o for o in outcomes] == [Delivery.SPOOLED, Delivery.ACKNOWLEDGED, *[Delivery.SPOOLED] * 3]
    assert [r.value for _, r in await spool.head(10)] == [b"r0", b"r2", b"r3", b"r4"]
    assert all(a.cancelled() for i, a in enumerate(kafka.acks) if i != 1)
    assert await sender.spool_unacknowledged() == 0
    await spool.close()


async def test_full_spool_and_record_errors_reach_the_caller(tmp_path: Path) -> None:
    class TooLarge(RecordingSender):
        async def send_raw(self, topic: str, value: bytes, *, key: Any, headers: Any) -> asyncio.Future[Any]:
            if len(value) > 5:
                raise MessageSizeTooLargeError()
            return await super().send_raw(topic, value, key=key, headers=headers)

    spool = await Spool.open(tmp_path / "s.db", name="t8", max_records=1)
    kafka = TooLarge()
    kafka.fail = True
    sender = SpoolingSender(kafka, spool, source="test")
    with pytest.raises(MessageSizeTooLargeError):
        await sender.send_raw("p", b"x" * 10, key=None, headers=())
    assert await (await sender.send_raw("p", b"a", key=None, headers=())) == Delivery.SPOOLED
    with pytest.raises(SpoolFull):
        await (await sender.send_raw("p", b"b", key=None, headers=()))
    await spool.close()


CRASH_BETWEEN_ACK_AND_DELETE = """
import asyncio, os, signal, sys
from pathlib import Path
from aimesh.core.spool import Spool, SpooledRecord, SpoolingSender
from aimesh.core.testing import RecordingSender

class DiesBeforeDelete(Spool):
    def _delete(self, ids):
        print("acked", len(ids), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    spool = await DiesBeforeDelete.open(Path(sys.argv[1]), name="crash")
    for i in range(50):
        assert await spool.put(SpooledRecord("t", f"r{i}".encode(), None, ()))
    print("spooled", spool.depth, flush=True)
    await SpoolingSender(RecordingSender(), spool, source="test").drain_once()

asyncio.run(main())
"""


async def test_kill_9_between_ack_and_delete_resends_instead_of_losing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    crashed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_BETWEEN_ACK_AND_DELETE), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert crashed.returncode == -9, crashed.stderr
    assert crashed.stdout.split() == ["spooled", "50", "acked", "50"]
    spool = await Spool.open(path, name="crash-after")
    assert spool.depth == 50, "every put that returned survived kill -9; the acknowledged ones are still there"
    kafka = RecordingSender()
    assert await SpoolingSender(kafka, spool, source="test").drain_once()
    assert [r.value for r in kafka.raw] == [f"r{i}".encode() for i in range(50)], "re-sent (duplicates), not lost"
    assert spool.depth == 0
    await spool.close()


async def test_a_spool_file_is_held_by_one_process(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t9")
    assert await spool.put(record(1))
    held = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; sqlite3.connect(sys.argv[1], timeout=0.1).execute('SELECT COUNT(*) FROM records')",
            str(tmp_path / "s.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "database is locked" in held.stderr
    await spool.close()


async def test_a_second_process_opening_a_held_spool_is_told_what_to_change(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path / "s.db", name="t10")
    opened = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, sys; from pathlib import Path; from aimesh.core.spool import Spool; "
            "asyncio.run(Spool.open(Path(sys.argv[1]), name='other'))",
            str(tmp_path / "s.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert opened.returncode != 0
    assert "is held by another process" in opened.stderr and "_SPOOL_DIR" in opened.stderr
    await spool.close()


def test_services_sharing_a_data_dir_get_their_own_spool_directory(tmp_path: Path) -> None:
    a = ServiceSettings(service_name="alpha", data_dir=tmp_path)
    b = ServiceSettings(service_name="beta", data_dir=tmp_path)
    assert a.spool_path() == tmp_path / "spool" / "alpha"
    assert a.spool_path() != b.spool_path()
    assert (
        ServiceSettings(service_name="alpha", data_dir=tmp_path, spool_dir=tmp_path / "x").spool_path()
        == tmp_path / "x"
    )
