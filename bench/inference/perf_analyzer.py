"""(b): Triton's own load generator, ``perf_analyzer`` (C++), against the same model over gRPC.

``bench/tools/install_perf_analyzer.sh`` (``make bench-tools``) installs it into
``.aimesh/tools/perf_analyzer`` (the tritonclient 2.50.0 wheel's binary in a virtualenv of its own;
``BENCH_PERF_ANALYZER`` names another one). ``locate`` finds it or says how to install it; the bench runs the
other contenders without it.

One cell: ``perf_analyzer -i grpc -u URL -m MODEL -x 1 -b 1 --concurrency-range C:C`` with the run's
encoded rows as ``--input-data`` (one ``[width]`` FP32 row per request, cycled), three measurement windows
of ``seconds / 3`` each taken as they come (``--stability-percentage`` so wide that the first three are
"stable": no retries, a bounded run), the CSV report (``-f``) read back: throughput and the p50/p99 latency
over those windows (its client-side latency, request sent to response decoded); its CSV has no average, so
the mean is the sum of its average components (client send, network + server send/receive, server queue,
compute input/infer/output, client receive). Around it, the
user+system CPU of perf_analyzer itself (``RUSAGE_CHILDREN``), of Triton (with its python-backend stubs) and
of the machine; CPU per request divides by throughput x the run's wall time (start-up included).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from aimesh.devstack.paths import repo_root
from bench.feature.load import Cell
from bench.ingest.sampling import SystemWatch
from bench.serving.clients import INPUT_TENSOR
from bench.serving.measure import Busy
from bench.serving.stack import BenchError, tree_cpu_s

ENV = "BENCH_PERF_ANALYZER"
INSTALL = "make bench-tools (bench/tools/install_perf_analyzer.sh)"
WINDOWS = 3
STABILITY_PERCENT = 100_000
"""Wide enough that any three windows count as stable: perf_analyzer reports the first three."""


@dataclass(frozen=True, slots=True)
class Located:
    """The binary when found; otherwise why not and how to install it."""

    binary: Path | None
    note: str


def locate() -> Located:
    """``BENCH_PERF_ANALYZER`` or ``.aimesh/tools/perf_analyzer/bin/perf_analyzer`` when executable."""
    named = os.environ.get(ENV)
    path = Path(named) if named else repo_root() / ".aimesh" / "tools" / "perf_analyzer" / "bin" / "perf_analyzer"
    shown = path.relative_to(repo_root()) if path.is_relative_to(repo_root()) else path
    if path.is_file() and os.access(path, os.X_OK):
        return Located(path, f"perf_analyzer: `{shown}`")
    return Located(None, f"perf_analyzer not found at `{shown}` (install it: {INSTALL}; or set {ENV}): (b) not run")


def write_input_data(path: Path, rows: Sequence[Sequence[float]]) -> Path:
    """``--input-data`` JSON: one request per row, ``INPUT__0`` of shape ``[width]`` (the batch of 1 is ``-b``)."""
    data = [{INPUT_TENSOR: {"content": [float(v) for v in row], "shape": [len(row)]}} for row in rows]
    path.write_text(json.dumps({"data": data}))
    return path


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


MEAN_PARTS = (
    "Client Send",
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Client Recv",
)
"""The CSV's average latency components (microseconds) that add up to a request's mean latency."""


def _read_csv(path: Path) -> Mapping[str, str]:
    """The last measurement of perf_analyzer's CSV; ``BenchError`` when it has none or lacks a column."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise BenchError(f"perf_analyzer wrote no measurement to {path}")
    wanted = ("Inferences/Second", "p50 latency", "p99 latency", *MEAN_PARTS)
    absent = [column for column in wanted if column not in rows[-1]]
    if absent:
        raise BenchError(f"perf_analyzer's {path} has no column {', '.join(absent)}")
    return rows[-1]


async def run(
    binary: Path,
    *,
    url: str,
    model: str,
    concurrency: int,
    seconds: float,
    input_data: Path,
    workdir: Path,
    triton: psutil.Process,
    name: str,
) -> tuple[Cell, Busy, float]:
    """One cell (see the module doc); returns it, its CPU (``Busy``: Triton's CPU ms per request) and
    perf_analyzer's own CPU ms per request. ``BenchError`` with its output's tail when it fails."""
    window_ms = max(int(seconds * 1000 / WINDOWS), 200)
    report = workdir / f"perf-{model}-c{concurrency}.csv"
    command = [
        str(binary),
        "-i",
        "grpc",
        "-u",
        url,
        "-m",
        model,
        "-x",
        "1",
        "-b",
        "1",
        "--concurrency-range",
        f"{concurrency}:{concurrency}",
        "--measurement-interval",
        str(window_ms),
        "--stability-percentage",
        str(STABILITY_PERCENT),
        "--max-trials",
        str(WINDOWS + 2),
        "--input-data",
        str(input_data),
        "-f",
        str(report),
    ]
    watch = SystemWatch(exclude={os.getpid()})
    triton_before, own_before = tree_cpu_s(triton), _children_cpu_s()
    watch.start()
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    wall_s = time.monotonic() - started
    watch.stop()
    if process.returncode != 0:
        tail = output.decode(errors="replace")[-2000:]
        raise BenchError(f"perf_analyzer exited {process.returncode} for {model} at concurrency {concurrency}:\n{tail}")
    found = _read_csv(report)
    throughput = float(found["Inferences/Second"])
    window_s = WINDOWS * window_ms / 1000
    cell = Cell(
        server=name,
        entities=1,
        concurrency=concurrency,
        requests=round(throughput * window_s),
        seconds=window_s,
        p50_ms=float(found["p50 latency"]) / 1000,
        p99_ms=float(found["p99 latency"]) / 1000,
        mean_ms=sum(float(found[part]) for part in MEAN_PARTS) / 1000,
    )
    sent = max(throughput * wall_s, 1.0)
    triton_ms = (tree_cpu_s(triton) - triton_before) * 1000 / sent
    own_ms = (_children_cpu_s() - own_before) * 1000 / sent
    return cell, Busy(watch.busy_cpu_s, watch.wall_s, watch.load_avg, {"Triton": triton_ms}), own_ms
