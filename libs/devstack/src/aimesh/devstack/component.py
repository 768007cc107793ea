"""The interface every locally run part (Kafka, Elasticsearch, Triton, PostgreSQL, a service) implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from aimesh.devstack.paths import Paths
from aimesh.devstack.process import read_pid, stop


@dataclass(frozen=True)
class Health:
    """What `aimesh status` prints for one part."""

    name: str
    running: bool
    healthy: bool
    version: str | None
    endpoint: str
    detail: str = ""


class Component(abc.ABC):
    """One process the CLI installs, starts, checks and stops.

    Contract: ``install`` and ``start`` are idempotent; ``wait_ready`` raises ``DevstackError`` with the
    cause and the fix when the part is not ready in time (pointing at its log file); ``stop`` touches
    only the process recorded in the part's PID file.
    """

    name: str

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    @property
    def pidfile(self) -> Path:
        return self.paths.pidfile(self.name)

    @property
    def logfile(self) -> Path:
        return self.paths.logfile(self.name)

    def install(self) -> None:  # noqa: B027 - optional hook; parts with nothing to download skip it
        """Download and unpack what the part needs (with progress), once."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the process in the background unless it already runs. Does not wait."""

    @abc.abstractmethod
    def wait_ready(self, timeout: float) -> None:
        """Block until the part answers for real, or raise DevstackError after ``timeout`` seconds."""

    @abc.abstractmethod
    def health(self) -> Health:
        """Probe the running part: real version and health. Never raises."""

    def is_running(self) -> bool:
        return read_pid(self.pidfile) is not None

    def stop(self) -> bool:
        """Stop the recorded process; True when one was running."""
        return stop(self.pidfile)
