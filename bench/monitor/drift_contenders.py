"""Running one drift contender in its own process and measuring it from outside.

Each contender is a child process given the two Parquet files and a JSON file to write its result to.
Its peak memory is its own ``VmHWM`` as it reports it when done (``drift_peak``: exact, not sampled; the
interpreter, its imports and the data included; not ``wait4``'s ``ru_maxrss``, which carries the
harness's high-water mark into the child), its CPU seconds the child's user + system time from
``os.wait4``, and its process seconds from start to exit (interpreter start and imports included). Its
drift seconds (files to flagged set) and phases are its own clock's, after its imports. What else ran
on the machine meanwhile comes from ``bench.ingest.sampling.SystemWatch``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ingest.sampling import OtherProcess, SystemWatch


class ContenderError(RuntimeError):
    """A contender exited with an error; the message quotes its last output lines."""


@dataclass(frozen=True, slots=True)
class Run:
    """One contender's run on one data set."""

    contender: str
    flagged: list[str]
    drift_s: float
    phases: dict[str, float]
    process_s: float
    cpu_s: float
    peak_rss: int
    """Bytes."""
    machine_busy_cpu_s: float
    load_avg: tuple[float, float, float]
    others: list[OtherProcess]
    detail: dict[str, Any]
    """The rest of the contender's JSON (its scores, thresholds, versions)."""


def run(contender: str, command: list[str], out: Path, log: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``command`` (which writes its JSON result to ``out``) to completion; raises ``ContenderError``."""
    watch = SystemWatch(exclude={os.getpid()})
    watch.start()
    started = time.perf_counter()
    with log.open("w") as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        watch.ignore(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    process_s = time.perf_counter() - started
    watch.stop()
    if child.returncode != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise ContenderError(f"{contender} exited with {child.returncode}:\n{tail}")
    result = json.loads(out.read_text())
    return Run(
        contender=contender,
        flagged=list(result.pop("flagged")),
        drift_s=float(result.pop("drift_s")),
        phases={name: float(seconds) for name, seconds in result.pop("phases").items()},
        process_s=process_s,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss=int(result.pop("peak_rss")),
        machine_busy_cpu_s=watch.busy_cpu_s,
        load_avg=watch.load_avg,
        others=watch.others(),
        detail=result,
    )
