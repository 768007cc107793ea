"""The benchmark's Markdown: the serving table, the ratios, streaming and backfill, and what it ran on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bench.feature.aimesh_side import StreamRate
from bench.feature.load import Cell
from bench.ingest.machine import Environment

GOAL_P99_RATIO = 1 / 3


@dataclass(frozen=True, slots=True)
class Backfill:
    """Peak RSS of one backfill run over ``rows`` lake rows, or why there is none (``missing``)."""

    rows: int = 0
    seconds: float = 0.0
    peak_rss: int = 0
    missing: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class FeatureReport:
    started: datetime
    command: str
    transactions: int
    cards: int
    features: int
    verified: dict[str, int]
    seconds_per_cell: float
    warmup_s: float
    cells: list[Cell]
    streams: dict[str, StreamRate]
    backfill: Backfill
    environment: Environment
    versions: dict[str, str]
    code: str
    notes: list[str] = field(default_factory=list)


def _cell(cells: Sequence[Cell], server: str, entities: int, concurrency: int) -> Cell | None:
    for cell in cells:
        if (cell.server, cell.entities, cell.concurrency) == (server, entities, concurrency):
            return cell
    return None


def serving_table(report: FeatureReport) -> str:
    lines = [
        "| request | concurrency | server | p50 ms | p99 ms | requests/s |",
        "|---|--:|---|--:|--:|--:|",
    ]
    for cell in report.cells:
        lines.append(
            f"| {cell.entities} x {report.features} | {cell.concurrency} | {cell.server} | "
            f"{cell.p50_ms:.2f} | {cell.p99_ms:.2f} | {cell.throughput:,.0f} |"
        )
    return "\n".join(lines)


def _ours(server: str) -> bool:
    return server.startswith("aimesh")


def ratio_table(report: FeatureReport) -> str:
    """Per request shape and aimesh server: its p99 and throughput over each Feast's."""
    aimeshes = list(dict.fromkeys(c.server for c in report.cells if _ours(c.server)))
    feasts = sorted({c.server for c in report.cells if not _ours(c.server)})
    header = "| request | concurrency | aimesh | " + " | ".join(
        f"p99 aimesh / {name} | throughput aimesh / {name}" for name in feasts
    )
    lines = [
        header + " | goal (p99 ≤ 1/3, higher throughput) |",
        "|---|--:|---|" + "--:|--:|" * len(feasts) + "---|",
    ]
    shapes = sorted({(c.entities, c.concurrency) for c in report.cells})
    for (entities, concurrency), server in ((shape, server) for shape in shapes for server in aimeshes):
        ours = _cell(report.cells, server, entities, concurrency)
        if ours is None:
            continue
        parts, met = [], True
        for name in feasts:
            theirs = _cell(report.cells, name, entities, concurrency)
            if theirs is None:
                parts += ["-", "-"]
                continue
            p99, throughput = ours.p99_ms / theirs.p99_ms, ours.throughput / theirs.throughput
            met = met and p99 <= GOAL_P99_RATIO and throughput > 1
            parts += [f"{p99:.2f}", f"{throughput:.1f}x"]
        lines.append(
            f"| {entities} x {report.features} | {concurrency} | {server.removeprefix('aimesh ')} | "
            + " | ".join(parts)
            + f" | {'met' if met else 'MISSED'} |"
        )
    return "\n".join(lines)


def other_table(report: FeatureReport) -> str:
    backfill = report.backfill
    if backfill.missing:
        backfill_row = f"| backfill peak memory | not measured: {backfill.missing} |"
    else:
        backfill_row = (
            f"| backfill peak memory ({backfill.rows:,} lake rows) | {backfill.peak_rss / 1024**2:,.0f} MiB RSS, "
            f"{backfill.seconds:.0f} s{'; ' + backfill.note if backfill.note else ''} |"
        )
    streams = [
        f"| streaming update throughput, {name} | {stream.per_second:,.0f} records/s into the online store "
        f"({stream.records:,} records in {stream.seconds:.1f} s) |"
        if stream.seconds > 0
        else f"| streaming update throughput, {name} | not measured: every record was applied between two "
        "polls (too few records; raise --transactions) |"
        for name, stream in report.streams.items()
    ]
    return "\n".join(["| aimesh | measured |", "|---|---|", *streams, backfill_row])


def tables(report: FeatureReport) -> str:
    return "\n\n".join([serving_table(report), ratio_table(report), other_table(report)])


def results_markdown(report: FeatureReport) -> str:
    env = report.environment
    verified = ", ".join(f"{name}: {count:,} values" for name, count in report.verified.items())
    versions = ", ".join(f"{name} {value}" for name, value in sorted(report.versions.items()))
    notes = "".join(f"- {note}\n" for note in report.notes)
    return f"""# Feature store benchmark: aimesh `GetOnlineFeatures` vs Feast's Python feature server

Run `{report.command}` on {report.started:%Y-%m-%d %H:%M} UTC ({report.code}).
Overwritten by every run; how it is measured: bench/README.md.

{report.transactions:,} card transactions of {report.cards:,} cards (banking generator) streamed into aimesh;
the same {report.features} features per card served by every server. Before timing, the other servers'
answers were checked against aimesh (SQLite)'s ({verified}; Feast for a sample of cards): identical.
Each cell: {report.warmup_s:.0f} s warm-up, then {report.seconds_per_cell:.0f} s measured, clients back to
back (closed loop); the servers run one at a time under load.

## Serving latency and throughput

{serving_table(report)}

## Ratios

{ratio_table(report)}

## Streaming and backfill

{other_table(report)}

## Notes

{notes}
## Machine and versions

- CPU: {env.cpu_model}, {env.cores} logical cores, {env.ram_gib:.1f} GiB RAM, Linux {env.kernel}, Python {env.python}
- Kafka {env.kafka}; {versions}
- The machine is shared with other engineers' work; clients and servers share its cores.
"""
