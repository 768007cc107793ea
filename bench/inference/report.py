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

TRITON, PERF, USER, SCORE, BATCH = (
    "(a) Triton direct",
    "(b) perf_analyzer",
    "(c) GetOnlineFeatures + Triton",
    "(d) Score",
    "(e) ScoreBatch",
)
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
class ModelRun:
    """One use case's model and its cells: ``perf_cpu_ms`` is perf_analyzer's own CPU ms per request by
    concurrency (empty when (b) did not run)."""

    title: str
    model: str
    trainer: str
    summary: str
    inputs: int
    context_fields: int
    train_rows: int
    train_positives: int
    epochs: int
    verification: Verification
    cells: list[tuple[Cell, Busy]]
    deliveries: list[Deliveries] = field(default_factory=list)
    perf_cpu_ms: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InferenceReport:
    started: datetime
    command: str
    entities: int
    batch_rows: int
    seconds_per_cell: float
    warmup_s: float
    models: list[ModelRun]
    perf_analyzer: str
    """Which perf_analyzer ran (b), or why (b) did not run and how to install it."""
    environment: Environment
    versions: dict[str, str]
    code: str
    others: list[OtherProcess] = field(default_factory=list)
    profiles: list[ProfileSummary] = field(default_factory=list)


def _rows_per_s(cell: Cell) -> float:
    return cell.throughput * cell.entities


def goals(run: ModelRun, batch_rows: int) -> list[Goal]:
    """The issue's goals that one model's cells allow to judge."""
    found: list[Goal] = []
    ours, theirs = find(run.cells, SCORE, GOAL_THROUGHPUT_AT), find(run.cells, USER, GOAL_THROUGHPUT_AT)
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
    ours, theirs = find(run.cells, SCORE, GOAL_P50_AT), find(run.cells, USER, GOAL_P50_AT)
    if ours is not None and theirs is not None:
        gap = ours.p50_ms - theirs.p50_ms
        found.append(
            Goal("Score p50 - (c) p50", GOAL_P50_AT, f"{gap:+.2f} ms", f"≤ +{GOAL_P50_MS:.0f} ms", gap <= GOAL_P50_MS)
        )
    for concurrency in sorted({c.concurrency for c, _ in run.cells}):
        batch, single = find(run.cells, BATCH, concurrency), find(run.cells, SCORE, concurrency)
        if batch is None or single is None:
            continue
        ratio = _rows_per_s(batch) / _rows_per_s(single)
        found.append(
            Goal(
                f"ScoreBatch rows/s / Score rows/s ({batch_rows} rows per call)",
                concurrency,
                f"{ratio:.1f}x",
                f"≥ {GOAL_BATCH:.0f}x",
                ratio >= GOAL_BATCH,
            )
        )
    return found


def goals_table(run: ModelRun, batch_rows: int) -> str:
    lines = ["| goal | concurrency | measured | wanted | verdict |", "|---|--:|--:|--:|---|"]
    for goal in goals(run, batch_rows):
        lines.append(
            f"| {goal.what} | {goal.concurrency} | **{goal.measured}** | {goal.wanted} | "
            f"{'met' if goal.met else '**MISSED**'} |"
        )
    return "\n".join(lines)


def _versus(cell: Cell | None, against: Cell | None) -> str:
    """``cell``'s throughput over ``against``'s, or a dash when either is missing."""
    if cell is None or against is None or against.throughput <= 0:
        return "-"
    return f"{cell.throughput / against.throughput:.2f}x"


def ratio_table(run: ModelRun) -> str:
    """Score against (c), (a) and (b), and (a) against (b), at every concurrency (the goals judge two of these
    cells); a dash where a contender did not run."""
    lines = [
        "| concurrency | Score / (c) throughput | Score - (c) p50 ms | Score - (c) p99 ms | Score / (a) throughput "
        "| Score - (a) p50 ms | Score / (b) throughput | (a) / (b) throughput | ScoreBatch / Score rows/s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for concurrency in sorted({c.concurrency for c, _ in run.cells}):
        score, user = find(run.cells, SCORE, concurrency), find(run.cells, USER, concurrency)
        triton, batch = find(run.cells, TRITON, concurrency), find(run.cells, BATCH, concurrency)
        perf = find(run.cells, PERF, concurrency)
        if score is None or user is None or triton is None or batch is None:
            continue
        lines.append(
            f"| {concurrency} | {_versus(score, user)} | {score.p50_ms - user.p50_ms:+.2f} | "
            f"{score.p99_ms - user.p99_ms:+.2f} | {_versus(score, triton)} | "
            f"{score.p50_ms - triton.p50_ms:+.2f} | {_versus(score, perf)} | {_versus(triton, perf)} | "
            f"{_rows_per_s(batch) / _rows_per_s(score):.1f}x |"
        )
    return "\n".join(lines)


def verdict(run: ModelRun, batch_rows: int) -> str:
    judged = goals(run, batch_rows)
    missed = [f"{g.what} at concurrency {g.concurrency} ({g.measured}, wanted {g.wanted})" for g in judged if not g.met]
    if not missed:
        return f"Goals: all {len(judged)} met."
    return f"Goals: {len(judged) - len(missed)} of {len(judged)} met; missed: " + "; ".join(missed) + "."


def delivery_lines(report: InferenceReport) -> list[str]:
    runs = [
        (run, [d for d in run.deliveries if d.published or d.in_flight_at_end or d.spooled or d.failed])
        for run in report.models
    ]
    if not any(shown for _, shown in runs):
        return []
    lines = [
        "## Prediction events behind the answers",
        "",
        "Score and ScoreBatch answer before Kafka acknowledges a row's Prediction (delivered in the background). "
        "After each cell the harness waits (untimed, at most 180 s) until inference has none in flight, so the "
        "next cell starts on a caught-up service; from inference's `/metrics`, from the cell's start (warm-up "
        "included) to then:",
        "",
        "| model | contender | concurrency | in flight at the cell's end | drain after the cell s | acknowledged | "
        "acknowledged per s (cell + drain) | spooled | lost |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run, shown in runs:
        for d in shown:
            drain = f"{d.drain_s:.1f}" if d.drained else f"> {d.drain_s:.0f} (not drained)"
            lines.append(
                f"| {run.title} | {d.server} | {d.concurrency} | {d.in_flight_at_end:,} | {drain} | {d.published:,} | "
                f"{d.published_per_s:,.0f} | {d.spooled:,} | {d.failed:,} |"
            )
    return [*lines, ""]


def profile_lines(report: InferenceReport) -> list[str]:
    if not report.profiles:
        return []
    lines = [
        "## Where inference's main thread spends its time (`--profile`)",
        "",
        f"The service again under cProfile (its main thread: the event loop), serving the {report.models[0].title} "
        "model, each contender at its concurrency "
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


def _ordered(run: ModelRun) -> list[tuple[Cell, Busy]]:
    """The cells by concurrency, then contender ((a) ... (e))."""
    return sorted(run.cells, key=lambda cell: (cell[0].concurrency, cell[0].server))


def _perf_note(run: ModelRun) -> list[str]:
    if not run.perf_cpu_ms:
        return []
    spent = ", ".join(f"{ms:.2f} CPU ms per request at concurrency {c}" for c, ms in sorted(run.perf_cpu_ms.items()))
    return [
        "",
        f"(b)'s client, perf_analyzer itself, used {spent} (the CPU columns leave out the other contenders' "
        "client, the harness's Python process).",
    ]


def model_tables(run: ModelRun, batch_rows: int) -> str:
    """One model's cells, ratios, goals and verdict."""
    return "\n\n".join(
        [
            cells_table(_ordered(run), PROCESSES, rows=True) + "\n".join(["", *_perf_note(run)]).rstrip(),
            ratio_table(run),
            goals_table(run, batch_rows),
            verdict(run, batch_rows),
        ]
    )


def tables(report: InferenceReport) -> str:
    return "\n\n".join(f"{run.title} ({run.model})\n\n{model_tables(run, report.batch_rows)}" for run in report.models)


def _model_line(run: ModelRun) -> str:
    context = f", {run.context_fields} of them from the request's context" if run.context_fields else ""
    return (
        f"- **{run.title}**: `{run.trainer}` over {run.summary}; {run.inputs} inputs{context}; trained for "
        f"{run.epochs} epochs on {run.train_rows:,} seeded rows ({run.train_positives:,} positive)."
    )


def _model_section(run: ModelRun, batch_rows: int) -> list[str]:
    v = run.verification
    return [
        f"## {run.title}: `{run.trainer}`, {run.inputs} inputs",
        "",
        cells_table(_ordered(run), PROCESSES, rows=True),
        *_perf_note(run),
        "",
        "### Ratios",
        "",
        ratio_table(run),
        "",
        "### Goals (issue: Score ≥ 0.8x (c)'s throughput at c=16, p50 at most 1 ms above (c)'s at c=1; "
        "ScoreBatch rows/s ≥ 20x Score's)",
        "",
        goals_table(run, batch_rows),
        "",
        verdict(run, batch_rows),
        "",
        "### Cross-checks before timing",
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
    ]


def results_markdown(report: InferenceReport) -> str:
    sections = [line for run in report.models for line in _model_section(run, report.batch_rows)]
    return "\n".join(
        [
            "# Inference benchmark: `Score` and `ScoreBatch` vs calling the feature service and Triton yourself",
            "",
            f"Run `{report.command}` on {report.started:%Y-%m-%d %H:%M} UTC ({report.code}).",
            "Overwritten by every run; how it is measured: bench/README.md.",
            "",
            f"Two models of two use cases in the same run, each trained by the training service's trainer and "
            "exported by its export code (TorchScript in the python backend, `max_batch_size` 256, dynamic batching, "
            "one CPU instance) into the shared Triton, with the signature the pipeline registers, served by one "
            f"inference process. Every request scores one of {report.entities:,} entities whose stored feature "
            "values (2 % MISSING) a feature-service stand-in serves from memory (`bench/serving/feature_stub.py`; "
            "it echoes the request's context for on-demand features), so the feature store's own cost is not in "
            "these numbers (bench/feature measures it).",
            "",
            *[_model_line(run) for run in report.models],
            "",
            "The contenders, for each model:",
            "",
            "- **(a) Triton direct**: `tritonclient.grpc.aio` `infer` of the row inference builds for the entity "
            "(encoded beforehand), from the harness's Python process;",
            "- **(b) perf_analyzer**: Triton's own C++ load generator (`-i grpc -b 1`, `--concurrency-range C:C`) "
            "sending the same encoded rows (`--input-data`), three measurement windows of a third of the cell's "
            f"seconds, run after the other contenders (the model warm); {report.perf_analyzer};",
            "- **(c) GetOnlineFeatures + Triton**: what a caller does without aimesh, from the benchmark process: the "
            "stub's `GetOnlineFeatures` for the entity (with the request context), the values in the model's input "
            "order and encoded (MISSING -> the model's fill, a category -> its index), then `infer` as (a);",
            "- **(d) Score**: `InferenceService.Score` of the real inference service (routing, the stack's JWT "
            "verified, request checks, the same lookup, encoding, the Triton call, a Prediction event to Kafka);",
            f"- **(e) ScoreBatch**: `InferenceService.ScoreBatch` with {report.batch_rows} rows (distinct entities) "
            "per call: one lookup of all rows, one Triton call, a Prediction per row. Its rows/s = calls/s x "
            f"{report.batch_rows}; its latency is per call.",
            "",
            f"Each cell of (a), (c), (d), (e): {report.warmup_s:g} s warm-up, then {report.seconds_per_cell:g} s "
            "measured, clients back to back (closed loop); one contender loaded at a time, the cells interleaved by "
            "concurrency, one model after the other. CPU ms per request are per call (for ScoreBatch per call of "
            f"{report.batch_rows} rows), warm-up included (for (b): over its whole run).",
            "",
            *sections,
            *delivery_lines(report),
            *profile_lines(report),
            "## Environment",
            "",
            *environment_section(report.environment, report.versions, report.code),
            "",
            "## What else was running",
            "",
            "The machine is shared (Kafka, Elasticsearch, PostgreSQL, the shared Triton and other engineers' work): "
            "machine-wide busy cores per cell are in the tables; processes other than the harness, inference and "
            "the feature stub that used at least 1 CPU s over all cells of (a), (c), (d), (e) (Triton serves every "
            "contender):",
            "",
            *others_section(report.others),
            "",
        ]
    )
