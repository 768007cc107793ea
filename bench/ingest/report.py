"""The benchmark's Markdown: the side-by-side table (printed, and put in the README) and results.md."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bench.ingest.contenders import ContenderResult
from bench.ingest.data import PublishedInput
from bench.ingest.machine import Environment

GOAL = 0.5
MIB = 1024**2
LABELS = {
    "passthrough": "anchor: aiokafka consume → produce passthrough",
    "ingest": "ours: ingest service (validate, PII tokens, canonical, DLQ, lake)",
}


@dataclass(frozen=True, slots=True)
class BenchReport:
    started: datetime
    command: str
    published: PublishedInput
    partitions: int
    batch: int
    seed: int
    anchor: ContenderResult
    ours: ContenderResult
    environment: Environment
    code: str

    @property
    def ratio(self) -> float:
        return self.ours.records_per_s / self.anchor.records_per_s


def table(report: BenchReport) -> str:
    """The side-by-side table and the ratio line."""
    rows = [
        "| contender | records in | records out | time (s) | records/s | CPU s | records per CPU s | peak RSS (MiB) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for result in (report.anchor, report.ours):
        per_cpu = f"{result.records_in / result.cpu_s:,.0f}" if result.cpu_s > 0 else "-"
        rows.append(
            f"| {LABELS.get(result.name, result.name)} | {result.records_in:,} | {result.output.records:,} "
            f"| {result.output.span_s:.2f} | **{result.records_per_s:,.0f}** | {result.cpu_s:.1f} | {per_cpu} "
            f"| {result.peak_rss / MIB:,.0f} |"
        )
    verdict = "goal met" if report.ratio >= GOAL else "below the goal"
    rows.append("")
    rows.append(f"**ours / anchor = {report.ratio:.2f}** (goal ≥ {GOAL}: {verdict})")
    return "\n".join(rows)


def environment_lines(env: Environment) -> list[str]:
    packages = ", ".join(f"{name} {v}" for name, v in env.packages.items())
    return [
        f"- machine: {env.cpu_model}, {env.cores} logical cores, {env.ram_gib:.1f} GiB RAM, Linux {env.kernel}",
        f"- Apache Kafka {env.kafka} (single local broker, KRaft, the shared dev stack)",
        f"- Python {env.python}; {packages}",
    ]


def results_markdown(report: BenchReport) -> str:
    """The whole of results.md: when, how, the table, what it ran on and what else was running."""
    published = report.published
    ours, anchor = report.ours, report.anchor
    lines = [
        "# Ingest benchmark results",
        "",
        f"Run {report.started:%Y-%m-%d %H:%M} UTC with `{report.command}` (this file is overwritten by every run).",
        "",
        table(report),
        "",
        "## Input",
        "",
        f"- {published.records:,} banking records from `aimesh.examples.banking` (seed {report.seed}, "
        f"{published.malformed:,} deliberately malformed, event times up to {published.end:%Y-%m-%d}), "
        f"JSON, key = card id, published once in {published.seconds:.1f} s to two topics of "
        f"{report.partitions} partitions ("
        + ", ".join(f"{n:,} {stream}" for stream, n in published.per_stream.items())
        + ")",
        f"- both contenders read those same records, one after the other (anchor first), each with its own "
        f"consumer group; batches of at most {report.batch} records per poll",
        f"- ours: {ours.detail}; anchor: {anchor.detail}",
        "",
        "## How it is measured",
        "",
        "- time: broker append time (`LogAppendTime` output topics) of the first to the last record the "
        "contender wrote; records/s = records in / that time (start-up and group join are outside it)",
        "- CPU s: user + system CPU seconds of the contender's process in that window (psutil, sampled every "
        "0.1 s); peak RSS: largest RSS sample of the process over its whole life",
        "",
        "## Environment",
        "",
        *environment_lines(report.environment),
        f"- ingest code measured: {report.code}",
        "",
        "## What else was running",
        "",
        "The machine is shared (Kafka, Elasticsearch, PostgreSQL, Triton and other engineers' work). "
        "Machine-wide busy CPU while each contender ran, and the other processes that used at least 1 CPU s:",
        "",
        *_others(anchor),
        *_others(ours),
    ]
    return "\n".join(lines) + "\n"


def _others(result: ContenderResult) -> Sequence[str]:
    available = result.wall_s * (os.cpu_count() or 1)
    lines = [
        f"- during {result.name} ({result.wall_s:.0f} s from start to stop): machine busy "
        f"{result.busy_cpu_s:.1f} of {available:.1f} CPU s, of which the contender {result.cpu_s:.1f} in its "
        f"measured window; load average {result.load_avg[0]:.2f} / {result.load_avg[1]:.2f} / "
        f"{result.load_avg[2]:.2f}"
    ]
    lines += [f"  - {p.cpu_s:.1f} CPU s: `{p.name}` (pid {p.pid})" for p in result.others]
    return lines
