"""The service runner: every long-running part of a service in one ``asyncio.TaskGroup``.

``ServiceRuntime.run()`` starts the gRPC server, the admin app and the consumers, and blocks until
SIGTERM/SIGINT. Then it drains: gRPC health goes NOT_SERVING and in-flight calls get the grace
period, consumers finish their batch and commit, the admin app stops; cleanups (closing producers,
database engines) run last. Parts still running after the grace period are cancelled. If any part
crashes, the others are stopped and the exception propagates, so the process exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from aimesh.core.admin import AdminServer, Probes, create_admin_app
from aimesh.core.auth import AccessRule
from aimesh.core.bus import EventConsumer, EventProducer, Handler
from aimesh.core.deadletter import dead_letter_publisher
from aimesh.core.grpc_server import GrpcServer, Registrar
from aimesh.core.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class _Part:
    name: str
    run: Callable[[], Coroutine[Any, Any, None]]
    stop: Callable[[], Awaitable[None]]


class ServiceRuntime:
    """Collects a service's parts, then runs and drains them together (see module doc)."""

    def __init__(self, settings: ServiceSettings, version: str) -> None:
        self.settings = settings
        self.version = version
        self.probes = Probes()
        self._parts: list[_Part] = []
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._health_targets: list[GrpcServer] = []
        self._stop = asyncio.Event()

    def add_part(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``run()`` until the service stops; ``stop()`` must make ``run()`` return."""
        self._parts.append(_Part(name, run, stop))

    def add_grpc(self, server: GrpcServer) -> None:
        """Serve ``server``; its grpc.health.v1 status follows the readiness checks (re-run every few seconds)."""
        server.serving_at_start = False
        self.add_part("grpc", server.serve, server.stop)
        self._health_targets.append(server)

    async def _watch_readiness(self) -> None:
        """Re-run the readiness checks every ``readiness_interval_seconds``: the gRPC health status
        follows them, and the liveness checks read the result (``Probes.last_failed``)."""
        while not self._stop.is_set():
            failed = await self.probes.check_ready()
            for server in self._health_targets:
                await server.set_serving(not failed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.settings.readiness_interval_seconds)

    def add_consumer(self, consumer: EventConsumer) -> None:
        """Run the consumer with this service's retry settings (``consumer_max_attempts``,
        ``consumer_retry_backoff_seconds``, ``consumer_max_retry_backoff_seconds``).

        Its liveness check fails only when the consumer is wedged (``EventConsumer.wedged`` with
        ``liveness_max_stall_seconds``: a loop step that does not return, or records waiting with no
        progress) while the readiness checks have found every dependency reachable for at least
        ``liveness_max_stall_seconds`` (``Probes.reachable_for``): a consumer backing off on an
        unavailable dependency, or one whose dependency is down, is alive, and after a dependency's
        return the consumer gets the whole stall limit to move again before it counts as wedged.
        """

        async def stop() -> None:
            consumer.stop()

        consumer.max_attempts = self.settings.consumer_max_attempts
        consumer.retry_backoff_s = self.settings.consumer_retry_backoff_seconds
        consumer.max_retry_backoff_s = self.settings.consumer_max_retry_backoff_seconds
        name = f"consumer:{','.join(consumer.topics) or consumer.service}"
        self.add_part(name, consumer.run, stop)
        limit = self.settings.liveness_max_stall_seconds

        def wedged() -> str | None:
            reason = consumer.wedged(limit)
            if reason is None:
                return None
            reachable = self.probes.reachable_for()
            if reachable is None or reachable < limit:
                return None  # a dependency is down, or was within the stall limit
            return reason

        self.probes.liveness[name] = wedged

    def add_standard_parts(
        self,
        *,
        registrar: Registrar,
        service_name: str,
        topics: list[str],
        handler: Handler,
        producer: EventProducer,
        access: Mapping[str, AccessRule] | None = None,
    ) -> None:
        """The usual shape of a service: one gRPC API (``access``: its methods' access rules, see
        ``GrpcServer``) plus one consumer group over ``topics``.

        Poison events are dead-lettered through ``producer`` onto ``aimesh.<service>.dlq.v1``. No consumer is
        added when ``topics`` is empty.
        """
        self.add_grpc(GrpcServer(self.settings, [registrar], [service_name], access=access))
        if topics:
            self.add_consumer(
                EventConsumer(
                    self.settings.kafka_bootstrap,
                    group_id=self.settings.group_id,
                    topics=topics,
                    handler=handler,
                    service=self.settings.service_name,
                    dead_letters=dead_letter_publisher(producer, self.settings),
                )
            )

    def add_cleanup(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run after every part has stopped (in reverse order of registration)."""
        self._cleanups.append(cleanup)

    @staticmethod
    async def _noop() -> None:
        return None

    def request_stop(self) -> None:
        """Begin the drain, as SIGTERM does."""
        self._stop.set()

    async def run(self) -> None:
        """Serve until stopped; see the module doc for the drain order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        admin = AdminServer(
            create_admin_app(self.settings.service_name, self.version, self.probes),
            self.settings.admin_host,
            self.settings.admin_port,
        )
        parts = [*self._parts, _Part("admin", admin.serve, admin.stop)]
        parts.append(_Part("readiness", self._watch_readiness, self._noop))
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(p.run(), name=p.name) for p in parts]
                tg.create_task(self._drain_on_stop(parts, tasks), name="drain")
                log.info("service started", extra={"parts": [p.name for p in parts]})
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            for cleanup in reversed(self._cleanups):
                try:
                    await cleanup()
                except Exception:
                    log.exception("cleanup failed")
            log.info("service stopped")

    async def _drain_on_stop(self, parts: list[_Part], tasks: list[asyncio.Task[None]]) -> None:
        waiter = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            finished = next(t for t in done)
            if finished.cancelled() or finished.exception() is not None:
                return  # the TaskGroup propagates the crash and cancels the rest
            log.warning("part %s returned on its own; stopping the service", finished.get_name())
        log.info("draining", extra={"grace_seconds": self.settings.shutdown_grace_seconds})
        grace = self.settings.shutdown_grace_seconds
        await asyncio.gather(*(p.stop() for p in parts), return_exceptions=True)
        _, pending = await asyncio.wait(tasks, timeout=grace + 1.0)
        for task in pending:
            log.warning("part %s did not stop within the grace period; cancelling", task.get_name())
            task.cancel()
