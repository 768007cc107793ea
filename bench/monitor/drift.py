"""``python -m bench.monitor.drift``: monitor's drift math against Evidently's DataDriftPreset (bench/README.md).

One run: ensure Evidently's virtualenv; for each ``--shapes`` data set, write the seeded reference and
current Parquet files once, then run Evidently and aimesh (binning with ``bin_counts_matrix``, then per
column with ``bin_counts``; monitor's thresholds) one after the other, each in its own process; then the
streaming rate of monitor's drift windows (``drift_stream``). Prints the tables and overwrites
bench/monitor/drift_results.md. Exits 1 with the cause when a contender fails (its log kept in the
temporary directory).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from aimesh.monitor.app import drift_policy
from aimesh.monitor.settings import MonitorSettings
from bench.ingest.code import working_tree
from bench.ingest.machine import describe
from bench.monitor import drift_data, drift_stream
from bench.monitor.drift_contenders import ContenderError, Run, run
from bench.monitor.drift_evidently_env import EvidentlyEnvError, evidently_python
from bench.monitor.drift_report import EVIDENTLY, Case, DriftReport, render, results_markdown
from bench.runner import run_benchmark

HERE = Path(__file__).resolve().parent
SHAPES = "356251x100,1000000x10"
QUICK_SHAPES = "20000x100,100000x10"
PACKAGES = ("aimesh-core", "numpy", "pyarrow", "protobuf")
BINNINGS = ("matrix", "column")
STREAM_INPUTS = (10, 100)
FAILURES = (ContenderError, EvidentlyEnvError)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=SHAPES, help=f"ROWSxCOLUMNS,... (default {SHAPES})")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: --shapes {QUICK_SHAPES}, a short stream")
    parser.add_argument("--shift-fraction", type=float, default=0.1, help="share of columns shifted (default 0.1)")
    parser.add_argument("--shift", type=float, default=0.5, help="size of the shift in standard deviations")
    parser.add_argument("--bins", type=int, default=10, help="aimesh's quantile bins per column (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-evidently", action="store_true", help="aimesh only (no ratios)")
    parser.add_argument("--stream-predictions", type=int, default=200_000, help="length of the synthetic stream")
    parser.add_argument("--results", type=Path, default=HERE / "drift_results.md")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes = QUICK_SHAPES
        args.stream_predictions = min(args.stream_predictions, 20_000)
    return args


def shapes(text: str) -> list[tuple[int, int]]:
    made = []
    for item in text.split(","):
        rows, _, columns = item.strip().partition("x")
        made.append((int(rows), int(columns)))
    return made


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def policy_args() -> list[str]:
    """Monitor's drift thresholds and PSI floor (``drift_policy`` of its settings) as ``drift_ours`` flags."""
    policy = drift_policy(MonitorSettings())
    thresholds = policy.thresholds
    return [
        *("--psi", str(thresholds.psi), "--js-distance", str(thresholds.js_distance)),
        *("--wasserstein-stddevs", str(thresholds.wasserstein_stddevs), "--epsilon", str(policy.epsilon)),
    ]


def _case(args: argparse.Namespace, workdir: Path, rows: int, columns: int, evidently: Path | None) -> Case:
    where = workdir / f"{rows}x{columns}"
    print(f"{rows:,} x {columns}: writing the data ...", flush=True)
    started = time.perf_counter()
    data = drift_data.write(where, rows, columns, shift_fraction=args.shift_fraction, shift=args.shift, seed=args.seed)
    generate_s = time.perf_counter() - started
    files = (str(data.reference), str(data.current))
    runs: list[Run] = []
    if evidently is not None:
        print(f"{rows:,} x {columns}: {EVIDENTLY} ...", flush=True)
        script = str(HERE / "drift_evidently.py")
        out = where / "evidently.json"
        outside = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
        runs.append(run(EVIDENTLY, [str(evidently), script, *files, str(out)], out, where / "evidently.log", outside))
    for binning in BINNINGS:
        name = f"aimesh ({'bin_counts_matrix per row group' if binning == 'matrix' else 'bin_counts per column'})"
        print(f"{rows:,} x {columns}: {name} ...", flush=True)
        out = where / f"aimesh-{binning}.json"
        command = [sys.executable, "-m", "bench.monitor.drift_ours", *files, str(out)]
        command += ["--bins", str(args.bins), "--binning", binning, *policy_args()]
        runs.append(run(name, command, out, where / f"aimesh-{binning}.log", dict(os.environ)))
    for done in runs:
        print(f"  {done.contender}: {done.drift_s:.2f} s, {done.peak_rss / 2**20:,.0f} MiB, {done.flagged}")
    return Case(
        rows=rows,
        columns=columns,
        shifted=data.shifted,
        shift_kinds={column.name: column.shift for column in data.columns if column.shift},
        generate_s=generate_s,
        file_mib=data.reference.stat().st_size / 2**20,
        runs=runs,
    )


async def bench(args: argparse.Namespace, workdir: Path, command: str) -> DriftReport:
    started = datetime.now(UTC)
    evidently = None if args.no_evidently else evidently_python()
    cases = [_case(args, workdir, rows, columns, evidently) for rows, columns in shapes(args.shapes)]
    versions = _versions()
    for case in cases:
        for done in case.runs:
            for name, value in done.detail.get("versions", {}).items():
                versions[f"{name} (Evidently's venv)"] = value
    print("streaming ...", flush=True)
    streams = [drift_stream.measure(args.stream_predictions, inputs=inputs, seed=args.seed) for inputs in STREAM_INPUTS]
    return DriftReport(
        started=started,
        command=command,
        shift=args.shift,
        seed=args.seed,
        cases=cases,
        environment=describe(),
        versions=versions,
        code=working_tree().description,
        stream_lines=drift_stream.markdown(streams),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_benchmark("monitor.drift", argv, parse_args(argv), bench, render, results_markdown, FAILURES)


if __name__ == "__main__":
    raise SystemExit(main())
