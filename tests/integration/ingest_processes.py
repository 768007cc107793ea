"""Helpers for tests that run ingest as separate processes (``python -m aimesh.ingest``) on unique topics.

``IngestProcess`` starts one replica with isolated settings (its own ports, data dir, transactional id;
shared group, topics, lake and seen-events database as the test says), reads its ``/metrics`` and
kills it; ``grpc_address`` is its IngestService. ``read_committed`` reads whole topics as downstream consumers see them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from aimesh.core.events import Event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class IngestProcess:
    """One ingest replica; ``env`` holds the ``INGEST_*`` settings shared with its siblings."""

    name: str
    env: dict[str, str]
    workdir: Path
    admin_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        """Start (or restart) the process with the same settings, transactional id included."""
        self.starts += 1
        env = {
            **os.environ,
            **self.env,
            "INGEST_ADMIN_PORT": str(self.admin_port),
            "INGEST_GRPC_PORT": str(self.grpc_port),
            "INGEST_SHIP_LOGS": "false",
            "INGEST_SHUTDOWN_GRACE_SECONDS": "3",
        }
        with open(self.log, "ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aimesh.ingest"], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples matching ``labels`` on the live process's /metrics (0 if none)."""
        text = httpx.get(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=2).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def try_metric(self, name: str, **labels: str) -> float | None:
        try:
            return self.metric(name, **labels)
        except httpx.HTTPError:
            return None

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, committed or aborted by the process itself."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def assigned_partitions(self) -> set[tuple[str, int]] | None:
        """The partitions of the latest "partitions assigned" log record of the current run (None before it)."""
        run = self.log.read_text(errors="replace").split(f"--- start {self.starts}\n")[-1]
        latest = None
        for line in run.splitlines():
            if '"partitions assigned"' in line:
                parts = orjson.loads(line).get("partitions", [])
                latest = {(p.rsplit("/", 1)[0], int(p.rsplit("/", 1)[1])) for p in parts}
        return latest

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.proc and self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready within {timeout}s:\n{self.tail()}")


async def read_committed(bootstrap: str, topic: str, partitions: int, within_s: float = 60.0) -> list[Event]:
    """Every record of ``topic`` (of ``partitions`` partitions) a ``read_committed`` consumer sees, up to
    the current end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        seen: list[Event] = []
        async with asyncio.timeout(within_s):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batch.values():
                    seen.extend(
                        Event(
                            topic=r.topic,
                            partition=r.partition,
                            offset=r.offset,
                            key=r.key,
                            value=r.value or b"",
                            headers=tuple(r.headers or ()),
                            timestamp_ms=r.timestamp,
                        )
                        for r in records
                    )
        return seen
    finally:
        await consumer.stop()


async def group_caught_up(bootstrap: str, group: str, topics: dict[str, int]) -> bool:
    """Whether ``group`` committed every partition of ``topics`` (name -> partitions) up to its end offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            if (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()
