"""The whole local stack: which parts exist, in which order they start and stop, and what `up` does."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from aimesh.devstack.component import Component, Health
from aimesh.devstack.elasticsearch import Elasticsearch
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.kafka import Kafka
from aimesh.devstack.otelcol import OtelCollector
from aimesh.devstack.paths import Paths
from aimesh.devstack.postgres import Postgres
from aimesh.devstack.process import read_pid
from aimesh.devstack.redis_server import RedisServer
from aimesh.devstack.services import services
from aimesh.devstack.triton import Triton


@dataclass(frozen=True)
class Stack:
    """The infrastructure (start order: kafka, elasticsearch, otelcol, postgres, redis, triton) and the five
    services, which export their spans to the collector."""

    infra: tuple[Component, ...]
    services: tuple[Component, ...]
    console: Console

    @classmethod
    def build(cls, paths: Paths, console: Console) -> Stack:
        kafka = Kafka(paths, console=console)
        collector = OtelCollector(paths, console=console)
        infra: tuple[Component, ...] = (
            kafka,
            Elasticsearch(paths, console=console),
            collector,
            Postgres(paths, console=console),
            RedisServer(paths, console=console),
            Triton(paths, console=console),
        )
        parts = services(paths, kafka_bootstrap=kafka.bootstrap, otlp_endpoint=collector.endpoint, console=console)
        return cls(infra, tuple(parts), console)

    @property
    def names(self) -> list[str]:
        return [c.name for c in (*self.infra, *self.services)]

    def select(self, only: Sequence[str] = (), *, infra_only: bool = False) -> list[Component]:
        """The parts named in ``only`` (all when empty; infrastructure only with ``infra_only``), in start order.

        Raises DevstackError for an unknown name.
        """
        unknown = sorted(set(only) - set(self.names))
        if unknown:
            raise DevstackError(
                "aimesh", f"unknown part(s): {', '.join(unknown)}", f"use one of: {', '.join(self.names)}"
            )
        pool = self.infra if infra_only else (*self.infra, *self.services)
        return [c for c in pool if not only or c.name in only]

    def up(self, parts: Sequence[Component], *, timeout: float) -> None:
        """Install what is missing, start ``parts`` in order and wait until each answers for real.

        Infrastructure first, then services; within each group every part is started before the first
        wait, so slow starters overlap. Parts already running are left alone (and only checked).
        ``timeout`` bounds the waits, from the end of the first installs (a first build, the collector's,
        takes minutes and shows its own progress). Raises DevstackError on the first part that fails;
        the parts already started keep running (`aimesh down` stops them).
        """
        deadline: float | None = None
        infra = [c for c in parts if c in self.infra]
        for group in (infra, [c for c in parts if c not in infra]):
            for part in group:
                proc = read_pid(part.pidfile)
                if proc is not None:
                    self.console.print(f"{part.name}: already running (pid {proc.pid})")
                    continue
                t0 = time.monotonic()
                part.install()
                part.start()
                self.console.print(f"{part.name}: started (installed/checked in {time.monotonic() - t0:.1f}s)")
            if deadline is None:
                deadline = time.monotonic() + timeout
            for part in group:
                t0 = time.monotonic()
                with self.console.status(f"[bold]{part.name}[/]: waiting until ready"):
                    part.wait_ready(max(deadline - time.monotonic(), 1.0))
                self.console.print(f"[green]{part.name}: ready[/] ({time.monotonic() - t0:.1f}s)")

    def down(self, parts: Sequence[Component]) -> None:
        """Stop ``parts`` in reverse start order (services first), each with its children. Never raises."""
        for part in reversed(parts):
            with self.console.status(f"[bold]{part.name}[/]: stopping"):
                stopped = part.stop()
            self.console.print(f"{part.name}: {'stopped' if stopped else 'was not running'}")

    def status(self, parts: Sequence[Component]) -> list[Health]:
        """Probe every part in ``parts``."""
        return [part.health() for part in parts]
