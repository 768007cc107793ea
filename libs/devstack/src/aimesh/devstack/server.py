"""The common base of the parts this package runs (Kafka, Elasticsearch, PostgreSQL, the services).

It adds to ``Component`` what they share: a console for install progress, the TCP ports a part binds
(checked before start) and the readiness loop that quotes the part's log when it fails.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from aimesh.devstack.component import Component
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import ensure_port_free

HOST = "127.0.0.1"


def log_tail(logfile: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of ``logfile`` (empty when there is none). Reads the file once, streaming."""
    try:
        with logfile.open(errors="replace") as f:
            return [line.rstrip("\n") for line in collections.deque(f, maxlen=lines)]
    except OSError:
        return []


def last_log_line(logfile: Path) -> str:
    """The last non-blank line of ``logfile``, or ``(empty log)``."""
    lines = [line for line in log_tail(logfile) if line.strip()]
    return lines[-1].strip() if lines else "(empty log)"


class Server(Component):
    """A part that listens on ``ports`` on 127.0.0.1. ``console`` receives install progress."""

    ports: tuple[int, ...] = ()

    def __init__(self, paths: Paths, *, console: Console | None = None) -> None:
        super().__init__(paths)
        self.console = console if console is not None else Console(stderr=True)

    def check_ports(self) -> None:
        """Raise DevstackError (naming the holder) when one of ``ports`` is already taken."""
        for port in self.ports:
            ensure_port_free(self.name, port)

    def wait_for(self, probe: Callable[[], bool], *, timeout: float, what: str, fix: str, log_lines: int = 1) -> None:
        """Call ``probe()`` every 0.5 s until it returns True.

        Raises DevstackError at once when the process is not running (it exited, or was never started), or
        after ``timeout`` seconds; both quote the log (its last line, or its last ``log_lines`` lines) and
        name the log file. ``what`` names the check (e.g. the URL), ``fix`` the remedy on timeout.
        """
        deadline = time.monotonic() + timeout
        while not probe():
            if not self.is_running():
                raise DevstackError(
                    self.name,
                    f"the process is not running (it exited while starting, or was never started)"
                    f"{self._log_excerpt(log_lines)}",
                    f"read `aimesh logs {self.name}` ({self.logfile}), fix the cause, run `aimesh up` again",
                )
            if time.monotonic() >= deadline:
                raise DevstackError(
                    self.name,
                    f"not ready after {timeout:.0f}s: {what}{self._log_excerpt(log_lines)}",
                    f"{fix}; see `aimesh logs {self.name}` ({self.logfile})",
                )
            time.sleep(0.5)

    def _log_excerpt(self, lines: int) -> str:
        """`` (last log line: ...)``, or for ``lines`` > 1 the last ``lines`` lines of the log, quoted."""
        if lines <= 1:
            return f" (last log line: {last_log_line(self.logfile)})"
        tail = log_tail(self.logfile, lines)
        return f"; last lines of {self.logfile}:\n" + ("\n".join(tail) if tail else "(empty log)")
