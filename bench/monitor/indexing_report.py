"""The indexing benchmark's Markdown: per-round rows, the medians, the ratio and what was measured on."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version

from bench.ingest.machine import Environment
from bench.ingest.sampling import SystemWatch

GOAL = 2.0
CONTENDERS = ("async_bulk", "bulk_index")
LABELS = {
    "async_bulk": "anchor: `helpers.async_bulk`, default (stdlib) serializer",
    "bulk_index": "ours: `ElasticStore.bulk_index` (orjson NDJSON)",
}


@dataclass(frozen=True, slots=True)
class RunResult:
    """One contender indexing every document once: wall time, this process's CPU, Elasticsearch's CPU."""

    name: str
    documents: int
    wall_s: float
    cpu_s: float
    es_cpu_s: float | None

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.wall_s


@dataclass(frozen=True, slots=True)
class IndexingReport:
    started: datetime
    command: str
    documents: int
    batch: int
    concurrency: int
    seed: int
    runs: Sequence[RunResult]
    es_version: str
    environment: Environment
    load_before: tuple[float, float, float]
    system: SystemWatch

    def of(self, name: str) -> list[RunResult]:
        return [r for r in self.runs if r.name == name]

    def median_rate(self, name: str) -> float:
        return statistics.median(r.docs_per_s for r in self.of(name))

    @property
    def ratio(self) -> float:
        return self.median_rate("bulk_index") / self.median_rate("async_bulk")

    def round_ratios(self) -> list[float]:
        """bulk_index / async_bulk docs/s within each round."""
        return [b.docs_per_s / a.docs_per_s for a, b in zip(self.of("async_bulk"), self.of("bulk_index"), strict=True)]

    def total_cpu_ratio(self) -> float | None:
        """Median (bench + Elasticsearch) CPU s per run, the anchor's over ours; None without Elasticsearch's."""
        totals = []
        for name in CONTENDERS:
            values = [r.cpu_s + r.es_cpu_s for r in self.of(name) if r.es_cpu_s is not None]
            if not values:
                return None
            totals.append(statistics.median(values))
        return totals[0] / totals[1]


def table(report: IndexingReport) -> str:
    """Median per contender over the rounds (docs/s, CPU s per run, ES CPU s per run) and the ratio line."""
    rows = [
        f"{report.documents:,} prediction documents per run, batches of {report.batch}, {report.concurrency} in "
        f"flight, {len(report.of('async_bulk'))} interleaved rounds; medians over the rounds",
        "",
        "| contender | docs/s | time (s) | CPU s (bench process) | docs per CPU s | Elasticsearch CPU s |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name in CONTENDERS:
        runs = report.of(name)
        cpu = statistics.median(r.cpu_s for r in runs)
        es_values = [r.es_cpu_s for r in runs if r.es_cpu_s is not None]
        es_cpu = f"{statistics.median(es_values):.1f}" if es_values else "-"
        rows.append(
            f"| {LABELS[name]} | **{report.median_rate(name):,.0f}** | {statistics.median(r.wall_s for r in runs):.2f} "
            f"| {cpu:.2f} | {report.documents / cpu:,.0f} | {es_cpu} |"
        )
    verdict = "goal met" if report.ratio >= GOAL else "below the goal"
    cpu_ratio = statistics.median(r.cpu_s for r in report.of("async_bulk")) / statistics.median(
        r.cpu_s for r in report.of("bulk_index")
    )
    pairs = ", ".join(f"{r:.2f}" for r in report.round_ratios())
    rows += [
        "",
        f"**bulk_index / async_bulk = {report.ratio:.2f}x docs/s** (goal ≥ {GOAL:.0f}x: {verdict}; per round "
        f"{pairs}); the bench process spends {cpu_ratio:.2f}x less CPU per document",
    ]
    ceiling = report.total_cpu_ratio()
    if ceiling is not None:
        rows.append(f"CPU per run of the bench process and Elasticsearch together, anchor / ours: {ceiling:.2f}x")
    return "\n".join(rows)


def results_markdown(report: IndexingReport) -> str:
    env, system = report.environment, report.system
    rounds = ["| round | contender | docs/s | time (s) | CPU s | Elasticsearch CPU s |", "|--:|---|--:|--:|--:|--:|"]
    per_round = len(CONTENDERS)
    for i, r in enumerate(report.runs):
        es_cpu = f"{r.es_cpu_s:.1f}" if r.es_cpu_s is not None else "-"
        rounds.append(
            f"| {i // per_round + 1} | {r.name} | {r.docs_per_s:,.0f} | {r.wall_s:.2f} | {r.cpu_s:.2f} | {es_cpu} |"
        )
    others = ", ".join(f"{p.name} (pid {p.pid}) {p.cpu_s:.0f} CPU s" for p in system.others()) or "none ≥ 1 CPU s"
    ours_cpu = sum(r.cpu_s + (r.es_cpu_s or 0.0) for r in report.runs)
    load = ", ".join(f"{v:.2f}" for v in report.load_before)
    load_after = ", ".join(f"{v:.2f}" for v in system.load_avg)
    clients = {name: version(name) for name in ("elasticsearch", "elastic-transport", "aiohttp")}
    packages = ", ".join(f"{name} {v}" for name, v in {**clients, **env.packages}.items())
    return "\n".join(
        [
            "# Monitor indexing benchmark: `bulk_index` against `helpers.async_bulk`",
            "",
            f"Run {report.started:%Y-%m-%d %H:%M} UTC: `{report.command}` (seed {report.seed}); see bench/README.md.",
            "",
            table(report),
            "",
            "## Every run",
            "",
            *rounds,
            "",
            "## Measured on",
            "",
            f"- {env.cpu_model}, {env.cores} logical cores, {env.ram_gib:.1f} GiB RAM, Linux {env.kernel}, "
            f"Python {env.python}; Elasticsearch {report.es_version} on the same machine",
            f"- load average before the timed rounds {load}, after {load_after}; the machine was busy "
            f"{system.busy_cpu_s:.0f} CPU s of {system.wall_s * env.cores:.0f} over the rounds, "
            f"{ours_cpu:.0f} of them the timed runs of this process and Elasticsearch",
            f"- other processes meanwhile: {others}",
            f"- {packages}",
            "",
        ]
    )
