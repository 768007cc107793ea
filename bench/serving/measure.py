"""The timed cells of a serving benchmark: every contender at every concurrency, one contender loaded at a
time, interleaved by concurrency (all contenders at 1, then all at 16 ...), each cell
``bench.feature.load.run_cell`` (closed loop, warm-up not counted), with the machine's busy CPU and each
serving process's CPU milliseconds per request around it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from bench.feature.load import Cell, run_cell
from bench.ingest.sampling import OtherProcess, SystemWatch
from bench.serving.stack import tree_cpu_s


class Contender(Protocol):
    """A ``bench.feature.load.Client`` that counts the requests it sent and can be closed."""

    name: str
    calls: int

    def prepare(self, entities: Sequence[str]) -> object: ...

    async def call(self, request: object) -> None: ...

    async def close(self) -> None: ...


class CellHook(Protocol):
    """Called around each cell, outside its timing and CPU accounting: ``before`` just before it starts,
    ``after`` once it is done (e.g. to wait until the service has caught up)."""

    async def before(self) -> None: ...

    async def after(self, cell: Cell) -> None: ...


@dataclass(frozen=True, slots=True)
class Busy:
    """Machine-wide busy CPU seconds over one cell's ``wall_s``, the load average after it, and the CPU
    milliseconds per request (warm-up included) of each serving process."""

    cpu_s: float
    wall_s: float
    load_avg: tuple[float, float, float]
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)

    @property
    def cores(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


async def measure(
    contenders: Sequence[tuple[Contender, Sequence[Sequence[str]]]],
    serving: Mapping[str, psutil.Process],
    *,
    concurrencies: Sequence[int],
    seconds: float,
    warmup_s: float,
    hook: CellHook | None = None,
) -> tuple[list[tuple[Cell, Busy]], list[OtherProcess]]:
    """Every (contender, its picks: the entity batches its requests cycle through) at every concurrency (see
    the module doc); returns the cells with their CPU, and the processes other than the harness and
    ``serving`` (Triton excepted: it is shared) that used at least 1 CPU s over all cells. ``hook`` runs
    around each cell. Closes the contenders."""
    ours = {os.getpid(), *(p.pid for name, p in serving.items() if name != "Triton")}
    overall = SystemWatch(exclude=set(ours))
    overall.start()
    cells: list[tuple[Cell, Busy]] = []
    for concurrency in concurrencies:
        for client, picks in contenders:
            if hook is not None:
                await hook.before()
            watch = SystemWatch(exclude=set(ours))
            calls, before = client.calls, {name: tree_cpu_s(p) for name, p in serving.items()}
            watch.start()
            cell = await run_cell(client, picks, concurrency=concurrency, seconds=seconds, warmup_s=warmup_s)
            watch.stop()
            sent = max(client.calls - calls, 1)
            per_request = {name: (tree_cpu_s(p) - before[name]) * 1000 / sent for name, p in serving.items()}
            cells.append((cell, Busy(watch.busy_cpu_s, watch.wall_s, watch.load_avg, per_request)))
            rows = f"  {cell.throughput * cell.entities:9,.0f} rows/s" if cell.entities > 1 else ""
            print(
                f"{client.name:22} c={concurrency:<2}: p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                f"{cell.throughput:8,.0f} req/s{rows}  (machine busy {watch.busy_cpu_s / watch.wall_s:.2f} cores)",
                flush=True,
            )
            if hook is not None:
                await hook.after(cell)
    overall.stop()
    for client, _ in contenders:
        await client.close()
    return cells, list(overall.others())
