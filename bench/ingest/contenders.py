"""The two contenders, each run as its own process and measured from outside.

- ``run_passthrough``: ``python -m bench.ingest.passthrough``; done when the process exits.
- ``run_ingest``: the real ``python -m aimesh.ingest`` (whatever it is at run time), started like
  ``aimesh up`` starts it (``aimesh.devstack.services.Service``) but on free ports, with this run's
  topics, consumer group and a temporary data directory (its lake); done when its ``/metrics``
  counters (accepted + rejected + duplicates) reach the published count, then stopped with SIGTERM.

Both are timed on their output topics (broker append times of the first and last record); the
process tree is sampled for peak RSS and CPU seconds; every other process's CPU use is recorded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psutil
from prometheus_client.parser import text_string_to_metric_families

from aimesh.devstack.paths import Paths, repo_root
from aimesh.devstack.process import read_pid, spawn, stop
from aimesh.devstack.server import log_tail
from aimesh.devstack.services import Service
from bench.ingest.sampling import OtherProcess, ProcessWatch, SystemWatch
from bench.ingest.topics import BenchTopics, OutputStats, read_output

INGEST_COUNTERS = (
    "aimesh_ingest_records_accepted_total",
    "aimesh_ingest_records_rejected_total",
    "aimesh_ingest_duplicates_dropped_total",
)
POLL_S = 0.5


class BenchError(RuntimeError):
    """A contender failed or stalled; the message names it and quotes its log."""


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What every contender run shares."""

    run_id: str
    bootstrap: str
    topics: BenchTopics
    records: int
    batch: int
    workdir: Path
    timeout_s: float
    stall_s: float
    pythonpath: str | None = None
    """``PYTHONPATH`` of the ingest service (``bench.ingest.code``); None: the installed working tree."""


@dataclass(frozen=True, slots=True)
class ContenderResult:
    """One contender's measured run."""

    name: str
    records_in: int
    output: OutputStats
    detail: str
    peak_rss: int
    cpu_s: float
    busy_cpu_s: float
    wall_s: float
    load_avg: tuple[float, float, float]
    others: list[OtherProcess]

    @property
    def records_per_s(self) -> float:
        return self.records_in / self.output.span_s if self.output.span_s > 0 else float("inf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_passthrough(run: RunSettings) -> ContenderResult:
    """Run the anchor until it forwarded every published record; raises ``BenchError`` when it fails."""
    pidfile, logfile = run.workdir / "passthrough.pid", run.workdir / "passthrough.log"
    command = [
        sys.executable,
        "-m",
        "bench.ingest.passthrough",
        "--bootstrap",
        run.bootstrap,
        "--inputs",
        *run.topics.inputs,
        "--output",
        run.topics.passthrough_out,
        "--group",
        f"bench-passthrough-{run.run_id}",
        "--expect",
        str(run.records),
        "--batch",
        str(run.batch),
    ]
    system = SystemWatch(exclude={os.getpid()})
    system.start()
    process = spawn(command, pidfile=pidfile, logfile=logfile, cwd=repo_root())
    system.ignore(process.pid)
    watch = ProcessWatch(process).start()
    try:
        code = await asyncio.to_thread(process.wait, run.timeout_s)
    except psutil.TimeoutExpired as exc:
        raise BenchError(f"passthrough did not finish in {run.timeout_s:.0f}s{_quote(logfile)}") from exc
    finally:
        system.stop()
        watch.stop()
        stop(pidfile)
    if code != 0:
        raise BenchError(f"passthrough exited with {code}{_quote(logfile)}")
    output = await read_output(run.bootstrap, [run.topics.passthrough_out])
    return _result("passthrough", run.records, output, _self_report(logfile), watch, system)


def _self_report(logfile: Path) -> str:
    """The passthrough's own JSON report line (its last line starting with ``{``), as a cross-check."""
    for line in reversed(log_tail(logfile, 5)):
        if line.startswith("{"):
            report = orjson.loads(line)
            return f"its own clock: {report['forwarded']:,} in {report['seconds']} s"
    return "no self-report"


class BenchIngest(Service):
    """The ingest ``Service``, optionally started under cProfile (``bench.profiled``)."""

    def __init__(self, paths: Paths, *, env: dict[str, str], profile_to: Path | None) -> None:
        if profile_to is not None:
            env = {**env, "BENCH_PROFILE_OUT": str(profile_to)}
        super().__init__(
            paths,
            "ingest",
            grpc_port=free_port(),
            admin_port=free_port(),
            kafka_bootstrap=env["INGEST_KAFKA_BOOTSTRAP"],
            extra_env=env,
        )
        self.profile_to = profile_to

    def command(self) -> list[str]:
        if self.profile_to is None:
            return super().command()
        return [sys.executable, "-m", "bench.profiled", "aimesh.ingest"]


BANKING_SOURCES = Path(__file__).resolve().parents[2] / "examples/src/aimesh/examples/banking/pack/sources.yaml"
"""The benchmark's records are the banking pack's: ingest ships no sources, so the run registers these at start."""


def ingest_environment(run: RunSettings, name: str) -> dict[str, str]:
    """Isolated settings: this run's topics, a consumer group of its own; everything else the defaults."""
    topics = run.topics
    code = {"PYTHONPATH": run.pythonpath} if run.pythonpath else {}
    return {
        **code,
        "INGEST_KAFKA_BOOTSTRAP": run.bootstrap,
        "INGEST_SOURCES_FILE": str(BANKING_SOURCES),
        "INGEST_SOURCE_TOPICS": orjson.dumps(
            {"card_transactions": topics.transactions, "chargebacks": topics.chargebacks}
        ).decode(),
        "INGEST_RECORDS_TOPIC": topics.records,
        "INGEST_DLQ_TOPIC": topics.dlq,
        "INGEST_SHIP_LOGS_TOPIC": topics.logs,
        "INGEST_CONSUMER_GROUP": f"bench-{name}-{run.run_id}",
        "INGEST_PII_SECRET": f"bench-secret-{run.run_id}",
        "INGEST_MAX_BATCH": str(run.batch),
    }


async def run_ingest(run: RunSettings, *, name: str = "ingest", profile_to: Path | None = None) -> ContenderResult:
    """Run the ingest service until its counters cover every published record, then SIGTERM it.

    With ``profile_to`` the service runs under cProfile and dumps its stats there on exit.
    Raises ``BenchError`` when it does not start, exits, stalls or times out.
    """
    home = run.workdir / name
    service = BenchIngest(Paths(home=home, repo=repo_root()), env=ingest_environment(run, name), profile_to=profile_to)
    system = SystemWatch(exclude={os.getpid()})
    system.start()
    service.start()
    process = read_pid(service.pidfile)
    if process is None:
        raise BenchError(f"{name} did not start{_quote(service.logfile)}")
    system.ignore(process.pid)
    watch = ProcessWatch(process).start()
    try:
        await asyncio.to_thread(service.wait_ready, 120)
        counts = await _await_counters(service, run)
    except Exception as exc:
        raise BenchError(f"{name}: {exc}{_quote(service.logfile)}") from exc
    finally:
        system.stop()
        await asyncio.to_thread(service.stop)
        watch.stop()
    output = await read_output(run.bootstrap, [run.topics.records, run.topics.dlq])
    accepted, rejected, duplicates = counts
    detail = f"{accepted:,} canonical + {rejected:,} DLQ + {duplicates:,} duplicates dropped"
    return _result(name, sum(counts), output, detail, watch, system)


async def _await_counters(service: Service, run: RunSettings) -> tuple[int, int, int]:
    """Poll ``/metrics`` until accepted + rejected + duplicates reach ``run.records``; returns the three.

    Raises ``BenchError`` after ``run.timeout_s`` or when the sum did not move for ``run.stall_s``.
    """
    deadline = time.monotonic() + run.timeout_s
    last_total, last_change = -1, time.monotonic()
    async with httpx.AsyncClient(base_url=service.admin_url, timeout=10.0) as client:
        while True:
            response = await client.get("/metrics")
            response.raise_for_status()
            counts = _counter_sums(response.text)
            total = sum(counts)
            if total >= run.records:
                return counts
            now = time.monotonic()
            if total != last_total:
                last_total, last_change = total, now
            elif now - last_change > run.stall_s:
                raise BenchError(f"stalled at {total:,} of {run.records:,} records for {run.stall_s:.0f}s")
            if now > deadline:
                raise BenchError(f"only {total:,} of {run.records:,} records after {run.timeout_s:.0f}s")
            await asyncio.sleep(POLL_S)


def _counter_sums(exposition: str) -> tuple[int, int, int]:
    """Sum of every labelled sample of each of ``INGEST_COUNTERS`` in a Prometheus text exposition."""
    sums = dict.fromkeys(INGEST_COUNTERS, 0.0)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in sums:
                sums[sample.name] += sample.value
    accepted, rejected, duplicates = (int(sums[name]) for name in INGEST_COUNTERS)
    return accepted, rejected, duplicates


def _result(
    name: str, records_in: int, output: OutputStats, detail: str, watch: ProcessWatch, system: SystemWatch
) -> ContenderResult:
    return ContenderResult(
        name=name,
        records_in=records_in,
        output=output,
        detail=detail,
        peak_rss=watch.peak_rss,
        cpu_s=watch.cpu_between(output.first_ms / 1000, output.last_ms / 1000),
        busy_cpu_s=system.busy_cpu_s,
        wall_s=system.wall_s,
        load_avg=system.load_avg,
        others=system.others(),
    )


def _quote(logfile: Path, lines: int = 15) -> str:
    tail: Sequence[str] = log_tail(logfile, lines)
    return f"; last lines of {logfile}:\n" + "\n".join(tail) if tail else f" ({logfile} is empty)"
