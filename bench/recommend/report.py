"""The benchmark's Markdown: the cells, the ratios against the goals, and what it ran on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bench.feature.load import Cell
from bench.ingest.machine import Environment
from bench.ingest.sampling import OtherProcess
from bench.recommend.model import ModelShape
from bench.serving.measure import Busy
from bench.serving.report import cells_table, environment_section, find, others_section

GOAL_THROUGHPUT = 0.7
GOAL_P50_OVERHEAD_MS = 2.0
RECOMMEND, TRITON, LOOKUP = "Recommend", "Triton direct", "feature stub lookup"
PROCESSES = ("inference", "Triton", "feature stub")


@dataclass(frozen=True, slots=True)
class RecommendReport:
    started: datetime
    command: str
    shape: ModelShape
    entities: int
    k: int
    verified: int
    seconds_per_cell: float
    warmup_s: float
    cells: list[tuple[Cell, Busy]]
    environment: Environment
    versions: dict[str, str]
    code: str
    others: list[OtherProcess] = field(default_factory=list)


def ratio_table(report: RecommendReport) -> str:
    lines = [
        "| concurrency | throughput Recommend / Triton | p50 Recommend - Triton (ms) | p99 Recommend - Triton (ms) "
        f"| goal (≥ {GOAL_THROUGHPUT}x, p50 +≤ {GOAL_P50_OVERHEAD_MS:.0f} ms) |",
        "|--:|--:|--:|--:|---|",
    ]
    for concurrency in sorted({c.concurrency for c, _ in report.cells}):
        ours, anchor = find(report.cells, RECOMMEND, concurrency), find(report.cells, TRITON, concurrency)
        if ours is None or anchor is None:
            continue
        ratio = ours.throughput / anchor.throughput
        p50, p99 = ours.p50_ms - anchor.p50_ms, ours.p99_ms - anchor.p99_ms
        met = ratio >= GOAL_THROUGHPUT and p50 <= GOAL_P50_OVERHEAD_MS
        lines.append(
            f"| {concurrency} | **{ratio:.2f}x** | **{p50:+.2f}** | {p99:+.2f} | {'met' if met else 'MISSED'} |"
        )
    return "\n".join(lines)


def tables(report: RecommendReport) -> str:
    return "\n\n".join([cells_table(report.cells, PROCESSES), ratio_table(report)])


def results_markdown(report: RecommendReport) -> str:
    s = report.shape
    return "\n".join(
        [
            "# Recommend benchmark: inference's `Recommend` vs a direct Triton call of the same model",
            "",
            f"Run `{report.command}` on {report.started:%Y-%m-%d %H:%M} UTC ({report.code}).",
            "Overwritten by every run; how it is measured: bench/README.md.",
            "",
            f"The model: `sequence_next_item`'s module (embeddings {s.embedding_dim}, LSTM {s.hidden}, a linear layer "
            f"over {s.vocabulary:,} items, softmax and top-{s.max_k} inside the model; seeded, untrained weights), "
            f"input {s.length} columns, exported by the training service's export code and served by the shared "
            "Triton (python backend, one CPU instance, dynamic batching as exported). Recommend asks "
            f"k = {report.k} for one of {report.entities:,} entities per request (each with 1..{s.length} known "
            "items of history); the direct call sends Triton the row Recommend builds for the same entity. "
            f"Before timing, Recommend's items for {report.verified} entities were checked equal to the direct "
            "call's top-k mapped through the vocabulary.",
            f"Each cell: {report.warmup_s:.0f} s warm-up, then {report.seconds_per_cell:.0f} s measured, clients back "
            "to back (closed loop); one contender loaded at a time, the cells interleaved by concurrency.",
            "",
            tables(report),
            "",
            "## What Recommend does that the direct call does not",
            "",
            "- the gRPC hop to inference (auth on: the stack's JWT, verified and cached), routing, request checks;",
            "- the history lookup: one `GetOnlineFeatures` to a feature-service stand-in (`feature_stub.py`: "
            "precomputed answers in memory, so the feature store's own cost is not in these numbers; bench/feature "
            "measures it), timed alone in the `feature stub lookup` rows;",
            "- encoding (`InputEncoder`), the Triton call through inference's client, mapping indexes to item ids, "
            "exclusions, and a Prediction event handed to the spooling Kafka sender (acknowledged in the background).",
            "",
            "## Environment",
            "",
            *environment_section(report.environment, report.versions, report.code),
            "",
            "## What else was running",
            "",
            "The machine is shared (Kafka, Elasticsearch, PostgreSQL, the shared Triton and other engineers' work): "
            "machine-wide busy cores per cell are in the table; processes other than the harness, inference and "
            "the feature stub that used at least 1 CPU s over all cells (Triton serves both contenders):",
            "",
            *others_section(report.others),
            "",
        ]
    )
