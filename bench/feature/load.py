"""The load generator: ``concurrency`` async clients send requests back to back for a fixed time.

One cell = one server x one request shape x one concurrency. Every client picks the next prepared
request (round robin over random batches of cards), times it with ``perf_counter`` from just before
the call to the decoded response, and starts the next one. Requests of the warm-up are sent but not
counted: the throughput counts the requests that complete inside the measured window (whenever they
started), the latencies those that start and complete inside it (so slow requests straddling the
window's edges do not make a cell look slower than its completion rate). A failed
request (error status, wrong row count) is counted and fails the run after the cell: numbers of a
server that answers errors mean nothing.

Clients: aimesh over one ``grpc.aio`` channel (``GetOnlineFeatures``, feature service ``bench_50``),
Feast over one ``aiohttp`` session (``POST /get-online-features``, JSON, decoded with orjson). Both
receive every value, status and event timestamp of the 50 features.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import numpy as np
import orjson

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.channels import open_caller_channel

SERVICE = "bench_50"


class LoadError(RuntimeError):
    """A server answered wrongly during a cell; the message says which and how."""


class Client(Protocol):
    """Sends one prepared request; raises ``LoadError`` on a wrong answer."""

    name: str

    def prepare(self, cards: Sequence[str]) -> object: ...

    async def call(self, request: object) -> None: ...


@dataclass(frozen=True, slots=True)
class Cell:
    """What a cell measured. Latencies in milliseconds."""

    server: str
    entities: int
    concurrency: int
    requests: int
    """Requests completed inside the measured window (the latencies are of those that also started in it)."""
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class AimeshClient:
    """``GetOnlineFeatures`` of feature service ``bench_50`` for a batch of card ids."""

    def __init__(self, target: str, name: str = "aimesh") -> None:
        self.name = name
        self._channel = open_caller_channel(target)
        self._stub = feature_pb2_grpc.FeatureServiceStub(self._channel)

    def prepare(self, cards: Sequence[str]) -> object:
        return feature_pb2.GetOnlineFeaturesRequest(feature_service=SERVICE, entity_ids=list(cards))

    async def call(self, request: object) -> None:
        assert isinstance(request, feature_pb2.GetOnlineFeaturesRequest)
        response = await self._stub.GetOnlineFeatures(request, timeout=30)
        if len(response.rows) != len(request.entity_ids):
            raise LoadError(f"{self.name}: {len(response.rows)} rows for {len(request.entity_ids)} entities")

    async def close(self) -> None:
        await self._channel.close()


class FeastClient:
    """``POST /get-online-features`` of feature service ``bench_50`` for a batch of card ids."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.url = f"{url}/get-online-features"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), headers={"Content-Type": "application/json"}
        )

    def prepare(self, cards: Sequence[str]) -> object:
        return (len(cards), orjson.dumps({"feature_service": SERVICE, "entities": {"card_id": list(cards)}}))

    async def call(self, request: object) -> None:
        assert isinstance(request, tuple)
        expected, body = request
        async with self._session.post(self.url, data=body) as response:
            payload = await response.read()
            if response.status != 200:
                raise LoadError(f"{self.name}: HTTP {response.status}: {payload[:300]!r}")
        results = orjson.loads(payload)["results"]
        if len(results[0]["values"]) != expected:
            raise LoadError(f"{self.name}: {len(results[0]['values'])} rows for {expected} entities")

    async def close(self) -> None:
        await self._session.close()


def batches(cards: Sequence[str], size: int, count: int, seed: int) -> list[list[str]]:
    """``count`` random batches of ``size`` distinct cards (the same for every server)."""
    rng = random.Random(seed)
    return [rng.sample(list(cards), size) for _ in range(count)]


async def run_cell(
    client: Client, cards: Sequence[Sequence[str]], *, concurrency: int, seconds: float, warmup_s: float
) -> Cell:
    """Drive ``client`` with ``concurrency`` workers for ``warmup_s`` + ``seconds``; returns the measured cell.

    Raises ``LoadError`` (the first wrong answer) or the transport's error.
    """
    prepared = [client.prepare(batch) for batch in cards]
    pick = itertools.cycle(prepared)
    latencies: list[float] = []
    completed = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + seconds

    async def worker() -> None:
        nonlocal completed
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            await client.call(next(pick))
            ended = time.perf_counter()
            if measure_from <= ended <= stop_at:
                completed += 1
                if began >= measure_from:
                    latencies.append(ended - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if not latencies:
        raise LoadError(f"{client.name}: no request completed within {seconds:.0f} s")
    ms = np.asarray(latencies) * 1000.0
    return Cell(
        server=client.name,
        entities=len(cards[0]),
        concurrency=concurrency,
        requests=completed,
        seconds=seconds,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
    )
