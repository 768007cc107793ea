"""Inference's Prediction deliveries around each cell, from its ``/metrics``.

Score and ScoreBatch answer before Kafka acknowledges the Prediction of a row (``PredictionPublisher``
delivers in the background), so a cell can end with deliveries still pending. ``DeliveryWatch`` (a
``bench.serving.measure.CellHook``) reads the publisher's counters before each cell and, after it, waits
until nothing is in flight (at most ``limit_s``), so the next cell starts on a caught-up service and the
run never stops inference with a backlog; what it saw becomes one ``Deliveries`` per cell.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.feature.load import Cell

IN_FLIGHT = "aimesh_inference_predictions_in_flight"
COUNTERS = {
    "published": "aimesh_inference_predictions_published_total",
    "spooled": "aimesh_inference_predictions_spooled_total",
    "failed": "aimesh_inference_predictions_failed_total",
}


@dataclass(frozen=True, slots=True)
class Deliveries:
    """One cell's Predictions: in flight when it ended, seconds until none was (``drained`` False: still some
    after the limit), and acknowledged / spooled / lost from its start (warm-up included) to then, over
    ``seconds``."""

    server: str
    concurrency: int
    in_flight_at_end: int
    drain_s: float
    drained: bool
    published: int
    spooled: int
    failed: int
    seconds: float

    @property
    def published_per_s(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0


async def read_metrics(admin_url: str) -> dict[str, float]:
    """The publisher's gauge and counters (0 for one not exported yet)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(f"{admin_url}/metrics")).text
    wanted = {IN_FLIGHT, *COUNTERS.values()}
    found = dict.fromkeys(wanted, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                found[sample.name] += sample.value
    return found


async def await_drained(
    admin_url: str, *, limit_s: float = 180.0, poll_s: float = 0.25
) -> tuple[int, dict[str, float]]:
    """Wait until inference has no Prediction in flight, at most ``limit_s``; returns how many were in flight
    when called and the metrics last read."""
    started = time.monotonic()
    now = await read_metrics(admin_url)
    at_start = int(now[IN_FLIGHT])
    while now[IN_FLIGHT] > 0 and time.monotonic() - started < limit_s:
        await asyncio.sleep(poll_s)
        now = await read_metrics(admin_url)
    return at_start, now


class DeliveryWatch:
    def __init__(self, admin_url: str, *, limit_s: float = 180.0, poll_s: float = 0.25) -> None:
        self._admin_url = admin_url
        self._limit_s = limit_s
        self._poll_s = poll_s
        self._before: dict[str, float] = {}
        self._started = 0.0
        self.cells: list[Deliveries] = []

    async def before(self) -> None:
        self._before = await read_metrics(self._admin_url)
        self._started = time.monotonic()

    async def after(self, cell: Cell) -> None:
        ended = time.monotonic()
        at_end, now = await await_drained(self._admin_url, limit_s=self._limit_s, poll_s=self._poll_s)
        done = time.monotonic()
        drain = done - ended if at_end else 0.0
        self.cells.append(
            Deliveries(
                server=cell.server,
                concurrency=cell.concurrency,
                in_flight_at_end=at_end,
                drain_s=drain,
                drained=now[IN_FLIGHT] == 0,
                seconds=done - self._started,
                **{key: int(now[name] - self._before.get(name, 0.0)) for key, name in COUNTERS.items()},
            )
        )
        if at_end:
            state = "drained" if now[IN_FLIGHT] == 0 else f"{int(now[IN_FLIGHT]):,} still in flight"
            print(
                f"    {at_end:,} Predictions in flight at the end of the cell; {state} after {drain:.1f} s", flush=True
            )
