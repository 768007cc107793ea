"""The aimesh feature service under test: started, fed, and asked for the values Feast will be given.

The real ``python -m aimesh.feature`` process (whatever the code is when the benchmark runs), started
like ``aimesh up`` starts it (``aimesh.devstack.services.Service``) on free ports, with this run's
topic, a consumer group of its own, a temporary data directory (SQLite online store) and the
benchmark's definitions (``FEATURE_DEFINITIONS_FILE`` = bench/feature/definitions.yaml). Log shipping
to Kafka is off; everything else is at its defaults. The Redis variant is the same process with
``FEATURE_ONLINE_STORE_URL`` at a private ``redis-server`` configured as ``aimesh up`` configures its
own (``aimesh.devstack.redis_server``: AOF, ``appendfsync everysec``), on a free port.

Streaming update throughput is read from outside: its ``/metrics`` counter
``aimesh_feature_records_applied_total`` is polled every 0.1 s from the first applied record until all
published records are applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.channels import open_caller_channel
from aimesh.devstack.paths import Paths, repo_root
from aimesh.devstack.process import read_pid
from aimesh.devstack.redis_server import RedisServer
from aimesh.devstack.server import log_tail
from aimesh.devstack.services import Service
from bench.ingest.contenders import free_port

HERE = Path(__file__).resolve().parent
DEFINITIONS = HERE / "definitions.yaml"
APPLIED = "aimesh_feature_records_applied_total"
SERVICE = "bench_50"
POLL_S = 0.1
FETCH_BATCH = 100


class AimeshError(RuntimeError):
    """The feature service failed, stalled or answered wrongly; the message quotes its log."""


@dataclass(frozen=True, slots=True)
class StreamRate:
    """``records`` applied between the first poll that saw progress and the one that saw all of them."""

    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class ServedValues:
    """aimesh's answer for every card at one time: feature references, and per card its values (None = missing)."""

    features: list[str]
    kinds: list[str]
    values: dict[str, list[object]]


class FeatureProcess(Service):
    """The feature service of this run; ``start``/``stop`` from ``Service``, plus the helpers below."""

    def __init__(
        self,
        workdir: Path,
        *,
        bootstrap: str,
        topic: str | None,
        run_id: str,
        profile_to: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """``topic`` None: consume nothing (``FEATURE_TOPICS=[]``); ``extra_env`` goes on top of the rest."""
        env = {
            "FEATURE_TOPICS": f'["{topic}"]' if topic else "[]",
            "FEATURE_CONSUMER_GROUP": f"bench-feature-{run_id}",
            "FEATURE_DEFINITIONS_FILE": str(DEFINITIONS),
            "FEATURE_SHIP_LOGS": "false",
        }
        if profile_to is not None:
            env["BENCH_PROFILE_OUT"] = str(profile_to)
        env.update(extra_env or {})
        super().__init__(
            Paths(home=workdir, repo=repo_root()),
            "feature",
            grpc_port=free_port(),
            admin_port=free_port(),
            kafka_bootstrap=bootstrap,
            extra_env=env,
        )
        self.profile_to = profile_to

    def command(self) -> list[str]:
        if self.profile_to is None:
            return super().command()
        return [*super().command()[:1], "-m", "bench.profiled", "aimesh.feature"]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def pid(self) -> int:
        process = read_pid(self.pidfile)
        if process is None:
            raise AimeshError(f"the feature service did not start{self.quote_log()}")
        return int(process.pid)

    def quote_log(self, lines: int = 20) -> str:
        tail = log_tail(self.logfile, lines)
        return f"; last lines of {self.logfile}:\n" + "\n".join(tail) if tail else f" ({self.logfile} is empty)"

    async def applied(self, client: httpx.AsyncClient) -> int:
        response = await client.get(f"{self.admin_url}/metrics")
        response.raise_for_status()
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
                if sample.name == APPLIED
            )
        )

    async def stream_rate(self, expected: int, *, timeout_s: float, stall_s: float = 60.0) -> StreamRate:
        """Poll ``/metrics`` until ``expected`` records are applied; raises ``AimeshError`` on stall or timeout."""
        deadline = time.monotonic() + timeout_s
        first: tuple[float, int] | None = None
        last_count, last_change = -1, time.monotonic()
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                count = await self.applied(client)
                now = time.monotonic()
                if count > 0 and first is None:
                    first = (now, count)
                if count >= expected and first is not None:
                    return StreamRate(count - first[1], now - first[0])
                if count != last_count:
                    last_count, last_change = count, now
                elif now - last_change > stall_s:
                    raise AimeshError(f"stalled at {count:,} of {expected:,} records applied{self.quote_log()}")
                if now > deadline:
                    raise AimeshError(f"{count:,} of {expected:,} records applied after {timeout_s:.0f} s")
                await asyncio.sleep(POLL_S)


def aimesh_redis(workdir: Path) -> RedisServer:
    """A started and ready ``redis-server`` for aimesh's Redis online store (state under ``workdir``).

    Raises ``AimeshError`` quoting its log when it does not answer.
    """
    server = RedisServer(Paths(home=workdir, repo=repo_root()), port=free_port())
    server.start()
    try:
        server.wait_ready(30)
    except Exception as exc:
        raise AimeshError(f"redis-server for aimesh not ready: {exc}") from exc
    return server


async def values_at(target: str, cards: Sequence[str], as_of: datetime) -> ServedValues:
    """``GetOnlineFeatures(bench_50)`` for every card with the as-of time ``as_of``, 100 per call.

    A value's kind (double, int64, string, bool) is taken from the first card that has it present;
    raises ``AimeshError`` when a call fails.
    """
    values: dict[str, list[object]] = {}
    features: list[str] = []
    async with open_caller_channel(target) as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        for start in range(0, len(cards), FETCH_BATCH):
            request = feature_pb2.GetOnlineFeaturesRequest(feature_service=SERVICE)
            for card in cards[start : start + FETCH_BATCH]:
                row = request.entity_rows.add(entity_id=card)
                row.timestamp.FromDatetime(as_of)
            try:
                response = await stub.GetOnlineFeatures(request, timeout=60)
            except grpc.aio.AioRpcError as exc:
                raise AimeshError(f"GetOnlineFeatures: {exc.code().name}: {exc.details()}") from exc
            features = list(response.feature_names)
            for row in response.rows:
                values[row.entity_id] = [python_value(v) for v in row.values]
    kinds = [_kind(values, i) for i in range(len(features))]
    return ServedValues(features, kinds, values)


def python_value(value: feature_pb2.FeatureValue) -> object:
    """The Python value of a served feature value; None when it is not PRESENT (missing or expired)."""
    if value.status != feature_pb2.FEATURE_STATUS_PRESENT:
        return None
    return scalar(value.value)


def scalar(value: common_pb2.Value) -> object:
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def _kind(values: dict[str, list[object]], index: int) -> str:
    for row in values.values():
        item = row[index]
        if isinstance(item, bool):
            return "bool"
        if isinstance(item, int):
            return "int64"
        if isinstance(item, float):
            return "double"
        if isinstance(item, str):
            return "string"
    return "double"
