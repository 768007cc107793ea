"""The drift benchmark's Markdown: per data set, each contender's time, memory and flagged set; the ratios
against the issue's goals; the streaming rate; the machine and what else ran."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bench.ingest.machine import Environment
from bench.monitor.drift_contenders import Run

GOAL_SPEEDUP = 20.0
GOAL_MEMORY_SHARE = 0.1
EVIDENTLY = "Evidently DataDriftPreset"


@dataclass(frozen=True, slots=True)
class Case:
    """One data set (``rows`` x ``columns``, the ``shifted`` columns) and every contender's run on it."""

    rows: int
    columns: int
    shifted: list[str]
    shift_kinds: dict[str, str]
    generate_s: float
    file_mib: float
    runs: list[Run]

    def run(self, contender: str) -> Run | None:
        return next((run for run in self.runs if run.contender == contender), None)


@dataclass(frozen=True, slots=True)
class DriftReport:
    started: datetime
    command: str
    shift: float
    seed: int
    cases: list[Case]
    environment: Environment
    versions: dict[str, str]
    code: str
    stream_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _flag_summary(run: Run, shifted: list[str]) -> str:
    missed = sorted(set(shifted) - set(run.flagged))
    extra = sorted(set(run.flagged) - set(shifted))
    if not missed and not extra:
        return f"{len(run.flagged)}: exactly the shifted ones"
    parts = [f"{len(run.flagged)} flagged"]
    if missed:
        parts.append(f"missed {', '.join(missed)}")
    if extra:
        parts.append(f"false alarms {', '.join(extra[:8])}{' …' if len(extra) > 8 else ''}")
    return "; ".join(parts)


def _phases(run: Run) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in run.phases.items())


def case_table(case: Case) -> str:
    lines = [
        "| contender | drift s (files → verdicts) | phases s | process s | CPU s | peak RSS MiB | flagged |",
        "|---|--:|---|--:|--:|--:|---|",
    ]
    for run in case.runs:
        lines.append(
            f"| {run.contender} | **{run.drift_s:.2f}** | {_phases(run)} | {run.process_s:.2f} | {run.cpu_s:.1f} | "
            f"**{run.peak_rss / 2**20:,.0f}** | {_flag_summary(run, case.shifted)} |"
        )
    return "\n".join(lines)


def ratio_lines(case: Case) -> list[str]:
    """Per aimesh run: Evidently's drift seconds over its own (goal ≥ 20x), its peak RSS over Evidently's
    (goal ≤ 0.1), whether it flags exactly the shifted columns; then the same speed-up in CPU seconds and
    process seconds, and for monitor's own part (bin + compare: the profiles come stored with the version)."""
    evidently = case.run(EVIDENTLY)
    if evidently is None:
        return []
    lines = []
    for run in case.runs:
        if run is evidently:
            continue
        speedup = evidently.drift_s / run.drift_s
        share = run.peak_rss / evidently.peak_rss
        exact = set(run.flagged) == set(case.shifted)
        monitor_part = run.phases.get("bin", 0.0) + run.phases.get("compare", 0.0)
        lines.append(
            f"- **{run.contender}**: **{speedup:.1f}x faster** (goal ≥ {GOAL_SPEEDUP:.0f}x: "
            f"{'met' if speedup >= GOAL_SPEEDUP else 'MISSED'}), **{share:.3f} of the memory** "
            f"(goal ≤ {GOAL_MEMORY_SHARE}: {'met' if share <= GOAL_MEMORY_SHARE else 'MISSED'}), "
            f"flags exactly the shifted columns: **{'yes' if exact else 'NO'}**; in CPU s "
            f"{evidently.cpu_s / run.cpu_s:.1f}x, in process s {evidently.process_s / run.process_s:.1f}x"
            + (f"; bin + compare alone {evidently.drift_s / monitor_part:.0f}x" if monitor_part else "")
        )
    return lines


def environment_lines(env: Environment) -> list[str]:
    return [
        f"- machine: {env.cpu_model}, {env.cores} logical cores, {env.ram_gib:.1f} GiB RAM, Linux {env.kernel}",
        f"- Python {env.python}",
    ]


def _load_lines(case: Case) -> list[str]:
    lines = []
    for run in case.runs:
        busy = run.machine_busy_cpu_s / run.process_s if run.process_s else 0.0
        load = ", ".join(f"{value:.2f}" for value in run.load_avg)
        lines.append(
            f"- {case.rows:,} x {case.columns}, {run.contender}: {busy:.2f} cores busy machine-wide over its "
            f"{run.process_s:.0f} s (its own CPU {run.cpu_s:.1f} s), load average at its end {load}"
        )
        lines += [f"  - {p.cpu_s:.1f} CPU s: `{p.name}` (pid {p.pid})" for p in run.others]
    return lines


def results_markdown(report: DriftReport) -> str:
    out = [
        "# Monitor drift benchmark results: aimesh against Evidently",
        "",
        f"Run {report.started:%Y-%m-%d %H:%M} UTC with `{report.command}` (this file is overwritten by every run).",
        "",
    ]
    for case in report.cases:
        kinds = ", ".join(f"{name} ({case.shift_kinds[name]})" for name in case.shifted)
        out += [
            f"## {case.rows:,} rows x {case.columns} numeric columns, {len(case.shifted)} shifted",
            "",
            case_table(case),
            "",
            *ratio_lines(case),
            "",
            f"Shifted columns: {kinds}. Two Parquet files of {case.file_mib:,.0f} MiB each, generated in "
            f"{case.generate_s:.1f} s before anything is timed.",
            "",
        ]
    if report.stream_lines:
        out += ["## Streaming: what the drift path absorbs per prediction", "", *report.stream_lines, ""]
    out += [
        "## How it is measured",
        "",
        f"- data (`drift_data.py`): seed {report.seed}; reference and current are independent draws of the same "
        "distribution per column (normal, log-normal, gamma, uniform in turn, seeded parameters), except the "
        f"shifted columns (10 %, seeded choice), alternately `mean` (+{report.shift} standard deviations) and "
        f"`scale` ({1 + report.shift}x the spread around the mean); float64 Parquet, row groups of 65,536 rows, "
        "written once and read by every contender",
        "- each contender is its own process, one after the other, never together; **drift s** is its own clock "
        "from after its imports to the flagged set (reading both files included); **process s** adds the "
        "interpreter's start and the imports; **CPU s** is the child's user + system time (`os.wait4`), **peak "
        "RSS** its own `VmHWM` when done (exact, the interpreter and the data in memory included)",
        f"- {EVIDENTLY}: `pandas.read_parquet` of both files, `Report([DataDriftPreset()], include_tests=True)` "
        "with every default (numeric columns over 1,000 rows: Wasserstein distance (normed), threshold 0.1); "
        "a column is flagged when its `ValueDrift` test fails; in its own virtualenv "
        "(`make bench-monitor-tools`, `bench/monitor/drift-evidently-requirements.txt`)",
        "- aimesh: `aimesh.core.distribution`: `numeric_profile` of each reference column (10 quantile bins, "
        "one column read at a time), the current's bin counts (`bin_counts_matrix` over each row group, or "
        "`bin_counts` per column), `compare` per column with monitor's thresholds; flagged = its verdict",
        "",
        "## Environment",
        "",
        *environment_lines(report.environment),
        f"- versions: {', '.join(f'{name} {v}' for name, v in report.versions.items())}",
        f"- aimesh code measured: {report.code}",
        "",
        "## What else was running",
        "",
        "The machine is shared (2 cores): per contender, the machine's busy cores over its run and every other "
        "process that used at least 1 CPU s meanwhile.",
        "",
    ]
    for case in report.cases:
        out += _load_lines(case)
    if report.notes:
        out += ["", "## Notes", "", *[f"- {note}" for note in report.notes]]
    return "\n".join(out) + "\n"


def render(report: DriftReport) -> str:
    parts = []
    for case in report.cases:
        parts += [f"{case.rows:,} x {case.columns}:", case_table(case), *ratio_lines(case), ""]
    return "\n".join([*parts, *report.stream_lines])
