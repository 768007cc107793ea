"""The Markdown parts both serving benchmarks write: the cells table, the environment and what else ran."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from bench.feature.load import Cell
from bench.ingest.machine import Environment
from bench.ingest.report import environment_lines
from bench.ingest.sampling import OtherProcess
from bench.serving.measure import Busy


def find(cells: Sequence[tuple[Cell, Busy]], server: str, concurrency: int) -> Cell | None:
    return next((c for c, _ in cells if (c.server, c.concurrency) == (server, concurrency)), None)


def cells_table(cells: Sequence[tuple[Cell, Busy]], processes: Sequence[str], *, rows: bool = False) -> str:
    """One line per cell: p50/p99, requests/s (and with ``rows`` the rows per request and rows/s), the CPU
    ms per request of each of ``processes``, machine-wide busy cores."""
    row_heads = " rows per request | rows/s |" if rows else ""
    lines = [
        f"| contender | concurrency | p50 ms | p99 ms | requests/s |{row_heads} CPU ms per request: "
        + " / ".join(processes)
        + " | machine busy (cores) |",
        "|---|--:|--:|--:|--:|" + ("--:|--:|" if rows else "") + "--:|--:|",
    ]
    for cell, busy in cells:
        cpu = " / ".join(f"{busy.cpu_ms_per_request.get(name, 0.0):.2f}" for name in processes)
        per_row = f" {cell.entities} | {cell.throughput * cell.entities:,.0f} |" if rows else ""
        lines.append(
            f"| {cell.server} | {cell.concurrency} | {cell.p50_ms:.2f} | {cell.p99_ms:.2f} | "
            f"{cell.throughput:,.0f} |{per_row} {cpu} | {busy.cores:.2f} of {os.cpu_count() or 1} |"
        )
    return "\n".join(lines)


def environment_section(environment: Environment, versions: Mapping[str, str], code: str) -> list[str]:
    listed = ", ".join(f"{name} {value}" for name, value in sorted(versions.items()))
    return [*environment_lines(environment), f"- {listed}", f"- code measured: {code}"]


def others_section(others: Sequence[OtherProcess]) -> list[str]:
    return [f"- {p.cpu_s:.1f} CPU s: `{p.name}` (pid {p.pid})" for p in others] or ["- none above 1 CPU s"]
