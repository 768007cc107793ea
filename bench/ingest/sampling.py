"""Outside observation of a contender process: peak RSS (sampled) and CPU time, plus what else ran."""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from dataclasses import dataclass

import psutil

SAMPLE_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class OtherProcess:
    """A process outside the benchmark and the CPU seconds it used while a contender ran."""

    pid: int
    name: str
    cpu_s: float


class ProcessWatch:
    """Samples ``process`` and its children every 0.1 s in a daemon thread until ``stop()``.

    ``peak_rss`` is the largest RSS sample of the process tree (bytes); ``cpu_between(a, b)`` the tree's
    user+system CPU seconds between two wall-clock times (epoch seconds), from the nearest samples.
    Samples stop when the process exits.
    """

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak_rss = 0
        self._samples: list[tuple[float, float]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sample, name=f"watch-{process.pid}", daemon=True)

    def start(self) -> ProcessWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used from ``start`` to ``end``; 0.0 when no sample covers the window."""
        if not self._samples:
            return 0.0
        return self._cpu_at(end) - self._cpu_at(start)

    def _cpu_at(self, moment: float) -> float:
        times = [t for t, _ in self._samples]
        i = min(bisect.bisect_left(times, moment), len(times) - 1)
        return self._samples[i][1]

    def _sample(self) -> None:
        while not self._stopping.is_set():
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                if self.process.status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.Error:
                return
            rss, cpu = 0, 0.0
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    rss += proc.memory_info().rss
            self._samples.append((time.time(), cpu))
            self.peak_rss = max(self.peak_rss, rss)
            self._stopping.wait(SAMPLE_INTERVAL_S)


class SystemWatch:
    """CPU seconds of every process on the machine between ``start()`` and ``stop()``, to report the others."""

    def __init__(self, exclude: set[int]) -> None:
        self._exclude = exclude
        self._before: dict[tuple[int, float], float] = {}
        self._after: dict[tuple[int, float], tuple[str, float]] = {}
        self._busy_before = 0.0
        self._started = 0.0
        self.busy_cpu_s = 0.0
        """CPU seconds the whole machine was busy between ``start()`` and ``stop()``."""
        self.wall_s = 0.0
        self.load_avg = (0.0, 0.0, 0.0)

    def ignore(self, pid: int) -> None:
        """Leave ``pid`` (a contender) out of ``others``."""
        self._exclude.add(pid)

    def start(self) -> None:
        self._before = {key: cpu for key, (_, cpu) in _snapshot().items()}
        self._busy_before = _busy_cpu_s()
        self._started = time.monotonic()

    def stop(self) -> None:
        self._after = _snapshot()
        self.busy_cpu_s = _busy_cpu_s() - self._busy_before
        self.wall_s = time.monotonic() - self._started
        self.load_avg = os.getloadavg()

    def others(self, minimum_cpu_s: float = 1.0, top: int = 6) -> list[OtherProcess]:
        """Processes (not ours) that used at least ``minimum_cpu_s`` meanwhile, busiest first."""
        used = [
            OtherProcess(pid, name, cpu - self._before.get((pid, created), 0.0))
            for (pid, created), (name, cpu) in self._after.items()
            if pid not in self._exclude
        ]
        return sorted((p for p in used if p.cpu_s >= minimum_cpu_s), key=lambda p: -p.cpu_s)[:top]


def _busy_cpu_s() -> float:
    cpu = psutil.cpu_times()
    return float(cpu.user + cpu.system + cpu.nice + cpu.irq + cpu.softirq)


def _snapshot() -> dict[tuple[int, float], tuple[str, float]]:
    """(pid, create time) -> (short command line, user+system CPU seconds) of every readable process."""
    seen: dict[tuple[int, float], tuple[str, float]] = {}
    for proc in psutil.process_iter(["pid", "create_time", "cmdline", "name", "cpu_times"]):
        info = proc.info
        times = info.get("cpu_times")
        if times is None:
            continue
        cmdline = info.get("cmdline") or [info.get("name") or "?"]
        seen[(info["pid"], info["create_time"])] = (_short(cmdline), times.user + times.system)
    return seen


def _short(cmdline: list[str], width: int = 90) -> str:
    """``prog args`` shortened; a JVM is named by its main class (its class path would fill the line)."""
    prog, args = os.path.basename(cmdline[0]), cmdline[1:]
    if prog.startswith("java"):
        args = [_java_main_class(args)]
    text = " ".join([prog, *args])
    return text if len(text) <= width else text[: width - 1] + "…"


def _java_main_class(args: list[str]) -> str:
    takes_value = {"-cp", "-classpath", "--class-path", "-jar", "--module-path", "-p"}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "?"
