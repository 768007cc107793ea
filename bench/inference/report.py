"""The benchmark's Markdown: the cells, the ratios against the issue's goals, the cross-checks, the machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bench.feature.load import Cell
from bench.inference.deliveries import Deliveries
from bench.ingest.machine import Environment
from bench.ingest.sampling import OtherProcess
from bench.serving.measure import Busy
from bench.serving.report import cells_table, environment_section, find, others_section

TRITON, USER, SCORE, BATCH = "(a) Triton direct", "(c) GetOnlineFeatures + Triton", "(d) Score", "(e) ScoreBatch"
PROCESSES = ("inference", "Triton", "feature stub")
GOAL_THROUGHPUT, GOAL_THROUGHPUT_AT = 0.8, 16
GOAL_P50_MS, GOAL_P50_AT = 1.0, 1
GOAL_BATCH = 20.0


@dataclass(frozen=True, slots=True)
class Verification:
    """Largest absolute score differences over ``entities`` sampled entities (``with_missing`` of them have
    a MISSING value): the eager module vs Triton, Score vs Triton, (c) vs Triton, ScoreBatch vs Score."""

    entities: int
    with_missing: int
    eager_vs_triton: float
    score_vs_triton: float
    user_vs_triton: float
    batch_vs_score: float


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """``--profile``: seconds of inference's main thread (cProfile, cumulative) over one profiled run of
    ``contender`` at ``concurrency``: running event-loop iterations (their waits for I/O, ``idle_s``,
    excluded), in the scoring handler (``Scorer.score`` or ``score_batch``, awaits excluded), and in
    Prediction deliveries (``PredictionPublisher._deliver``: the Kafka sends behind the answers)."""

    contender: str
    concurrency: int
    loop_s: float
    handler_s: float
    deliver_s: float
    idle_s: float


@dataclass(frozen=True, slots=True)
class Goal:
    what: str
    concurrency: int
    measured: str
    wanted: str
    met: bool


@dataclass(frozen=True, slots=True)
class InferenceReport:
    started: datetime
    command: str
    entities: int
    batch_rows: int
    train_rows: int
    train_positives: int
    epochs: int
    inputs: int
    verification: Verification
    seconds_per_cell: float
    warmup_s: float
    cells: list[tuple[Cell, Busy]]
    environment: Environment
    versions: dict[str, str]
    code: str
    others: list[OtherProcess] = field(default_factory=list)
    deliveries: list[Deliveries] = field(default_factory=list)
    profiles: list[ProfileSummary] = field(default_factory=list)


def _rows_per_s(cell: Cell) -> float:
    return cell.throughput * cell.entities


def goals(report: InferenceReport) -> list[Goal]:
    """The issue's goals that this run's cells allow to judge."""
    found: list[Goal] = []
    ours, theirs = find(report.cells, SCORE, GOAL_THROUGHPUT_AT), find(report.cells, USER, GOAL_THROUGHPUT_AT)
    if ours is not None and theirs is not None:
        ratio = ours.throughput / theirs.throughput
        found.append(
            Goal(
                "Score throughput / (c) throughput",
                GOAL_THROUGHPUT_AT,
                f"{ratio:.2f}x",
                f"≥ {GOAL_THROUGHPUT}x",
                ratio >= GOAL_THROUGHPUT,
            )
        )
    ours, theirs = find(report.cells, SCORE, GOAL_P50_AT), find(report.cells, USER, GOAL_P50_AT)
    if ours is not None and theirs is not None:
        gap = ours.p50_ms - theirs.p50_ms
        found.append(
            Goal("Score p50 - (c) p50", GOAL_P50_AT, f"{gap:+.2f} ms", f"≤ +{GOAL_P50_MS:.0f} ms", gap <= GOAL_P50_MS)
        )
    for concurrency in sorted({c.concurrency for c, _ in report.cells}):
        batch, single = find(report.cells, BATCH, concurrency), find(report.cells, SCORE, concurrency)
        if batch is None or single is None:
            continue
        ratio = _rows_per_s(batch) / _rows_per_s(single)
        found.append(
            Goal(
                f"ScoreBatch rows/s / Score rows/s ({report.batch_rows} rows per call)",
                concurrency,
                f"{ratio:.1f}x",
                f"≥ {GOAL_BATCH:.0f}x",
                ratio >= GOAL_BATCH,
            )
        )
    return found


def goals_table(report: InferenceReport) -> str:
    lines = ["| goal | concurrency | measured | wanted | verdict |", "|---|--:|--:|--:|---|"]
    for goal in goals(report):
        lines.append(
            f"| {goal.what} | {goal.concurrency} | **{goal.measured}** | {goal.wanted} | "
            f"{'met' if goal.met else '**MISSED**'} |"
        )
    return "\n".join(lines)


def ratio_table(report: InferenceReport) -> str:
    """Score against (c) and against (a) at every concurrency (the goals judge two of these cells)."""
    lines = [
        "| concurrency | Score / (c) throughput | Score - (c) p50 ms | Score - (c) p99 ms | Score / (a) throughput "
        "| Score - (a) p50 ms | ScoreBatch / Score rows/s |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for concurrency in sorted({c.concurrency for c, _ in report.cells}):
        score, user = find(report.cells, SCORE, concurrency), find(report.cells, USER, concurrency)
        triton, batch = find(report.cells, TRITON, concurrency), find(report.cells, BATCH, concurrency)
        if score is None or user is None or triton is None or batch is None:
            continue
        lines.append(
            f"| {concurrency} | {score.throughput / user.throughput:.2f}x | {score.p50_ms - user.p50_ms:+.2f} | "
            f"{score.p99_ms - user.p99_ms:+.2f} | {score.throughput / triton.throughput:.2f}x | "
            f"{score.p50_ms - triton.p50_ms:+.2f} | {_rows_per_s(batch) / _rows_per_s(score):.1f}x |"
        )
    return "\n".join(lines)


def verdict(report: InferenceReport) -> str:
    judged = goals(report)
    missed = [f"{g.what} at concurrency {g.concurrency} ({g.measured}, wanted {g.wanted})" for g in judged if not g.met]
    if not missed:
        return f"Goals: all {len(judged)} met."
    return f"Goals: {len(judged) - len(missed)} of {len(judged)} met; missed: " + "; ".join(missed) + "."


def delivery_lines(report: InferenceReport) -> list[str]:
    shown = [d for d in report.deliveries if d.published or d.in_flight_at_end or d.spooled or d.failed]
    if not shown:
        return []
    lines = [
        "## Prediction events behind the answers",
        "",
        "Score and ScoreBatch answer before Kafka acknowledges a row's Prediction (delivered in the background). "
        "After each cell the harness waits (untimed, at most 180 s) until inference has none in flight, so the "
        "next cell starts on a caught-up service; from inference's `/metrics`, from the cell's start (warm-up "
        "included) to then:",
        "",
        "| contender | concurrency | in flight at the cell's end | drain after the cell s | acknowledged | "
        "acknowledged per s (cell + drain) | spooled | lost |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for d in shown:
        drain = f"{d.drain_s:.1f}" if d.drained else f"> {d.drain_s:.0f} (not drained)"
        lines.append(
            f"| {d.server} | {d.concurrency} | {d.in_flight_at_end:,} | {drain} | {d.published:,} | "
            f"{d.published_per_s:,.0f} | {d.spooled:,} | {d.failed:,} |"
        )
    return [*lines, ""]


def profile_lines(report: InferenceReport) -> list[str]:
    if not report.profiles:
        return []
    lines = [
        "## Where inference's main thread spends its time (`--profile`)",
        "",
        "The service again under cProfile (its main thread: the event loop), each contender at its concurrency "
        "for the cell's seconds, untimed for the tables; top functions in `profile.txt`. Seconds over the "
        "process's life (start-up, and the Prediction deliveries it drains at SIGTERM, included), a coroutine's "
        "own steps only (its awaits excluded):",
        "",
        "| contender | concurrency | event loop running s | of which the scoring handler s | of which Prediction "
        "deliveries s | event loop waiting for I/O s |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for p in report.profiles:
        lines.append(
            f"| {p.contender} | {p.concurrency} | {p.loop_s:.2f} | {p.handler_s:.2f} | {p.deliver_s:.2f} | "
            f"{p.idle_s:.2f} |"
        )
    return [*lines, ""]


def tables(report: InferenceReport) -> str:
    return "\n\n".join(
        [cells_table(report.cells, PROCESSES, rows=True), ratio_table(report), goals_table(report), verdict(report)]
    )


def results_markdown(report: InferenceReport) -> str:
    v = report.verification
    return "\n".join(
        [
            "# Inference benchmark: `Score` and `ScoreBatch` vs calling the feature service and Triton yourself",
            "",
            f"Run `{report.command}` on {report.started:%Y-%m-%d %H:%M} UTC ({report.code}).",
            "Overwritten by every run; how it is measured: bench/README.md.",
            "",
            f"The model: `mlp_classifier` (the training service's trainer: `TabularEncoder` standardising "
            f"{report.inputs} numeric inputs, ReLU layers 32 and 16, a sigmoid) trained for {report.epochs} epochs on "
            f"{report.train_rows:,} seeded rows ({report.train_positives:,} positive), exported by the training "
            "service's export code (TorchScript in the python backend, `max_batch_size` 256, dynamic batching, one "
            "CPU instance) into the shared Triton, with the signature the pipeline registers. Every request scores "
            f"one of {report.entities:,} `account` entities whose {report.inputs} feature values (2 % MISSING) a "
            "feature-service stand-in serves from memory (`bench/serving/feature_stub.py`), so the feature store's "
            "own cost is not in these numbers (bench/feature measures it).",
            "",
            "- **(a) Triton direct**: `tritonclient.grpc.aio` `infer` of the row inference builds for the entity "
            "(encoded beforehand), the anchor of what Triton alone costs;",
            "- **(c) GetOnlineFeatures + Triton**: what a caller does without aimesh, from the benchmark process: the "
            "stub's `GetOnlineFeatures` for the entity, the values in the model's input order (MISSING -> the "
            "model's fill), then `infer` as (a);",
            "- **(d) Score**: `InferenceService.Score` of the real inference service (routing, the stack's JWT "
            "verified, request checks, the same lookup, encoding, the Triton call, a Prediction event to Kafka);",
            f"- **(e) ScoreBatch**: `InferenceService.ScoreBatch` with {report.batch_rows} rows (distinct entities) "
            "per "
            "call: one lookup of all rows, one Triton call, a Prediction per row. Its rows/s = calls/s x "
            f"{report.batch_rows}; its latency is per call.",
            "",
            f"Each cell: {report.warmup_s:.0f} s warm-up, then {report.seconds_per_cell:.0f} s measured, clients back "
            "to back (closed loop); one contender loaded at a time, the cells interleaved by concurrency. CPU ms per "
            "request are per call (for ScoreBatch per call of "
            f"{report.batch_rows} rows), warm-up included.",
            "",
            cells_table(report.cells, PROCESSES, rows=True),
            "",
            "## Ratios",
            "",
            ratio_table(report),
            "",
            "## Goals (issue: Score ≥ 0.8x (c)'s throughput at c=16, p50 at most 1 ms above (c)'s at c=1; "
            "ScoreBatch rows/s ≥ 20x Score's)",
            "",
            goals_table(report),
            "",
            verdict(report),
            "",
            "## Cross-checks before timing",
            "",
            f"For {v.entities} entities ({v.with_missing} of them with a MISSING value, fed the signature's fill), "
            "largest absolute score difference:",
            "",
            f"- Triton direct vs the fitted module in PyTorch (eager): {v.eager_vs_triton:.2e}",
            f"- Score vs Triton direct: {v.score_vs_triton:.2e}",
            f"- (c) GetOnlineFeatures + Triton vs Triton direct: {v.user_vs_triton:.2e}",
            f"- ScoreBatch of those {v.entities} rows in one call (answers in request order) vs Score: "
            f"{v.batch_vs_score:.2e}",
            "",
            "Each must be within 1e-5 or the run fails.",
            "",
            *delivery_lines(report),
            *profile_lines(report),
            "## Environment",
            "",
            *environment_section(report.environment, report.versions, report.code),
            "",
            "## What else was running",
            "",
            "The machine is shared (Kafka, Elasticsearch, PostgreSQL, the shared Triton and other engineers' work): "
            "machine-wide busy cores per cell are in the table; processes other than the harness, inference and "
            "the feature stub that used at least 1 CPU s over all cells (Triton serves every contender):",
            "",
            *others_section(report.others),
            "",
        ]
    )
