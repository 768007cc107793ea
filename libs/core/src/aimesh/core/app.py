"""``main()`` plumbing shared by every service: settings → logging → tracing → the service's wiring.

A service's ``__main__`` calls ``run_main(IngestSettings, serve_ingest)``; ``serve_ingest(settings)``
usually delegates to ``serve(settings, version, wire)`` below, where ``wire`` adds the service's parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiokafka.errors import KafkaError

from aimesh.core.bus import EventProducer, EventSender
from aimesh.core.errors import Unavailable
from aimesh.core.logging import configure_logging
from aimesh.core.logship import LogShipper
from aimesh.core.runner import ServiceRuntime
from aimesh.core.settings import ServiceSettings
from aimesh.core.spool import Spool, SpoolingSender
from aimesh.core.tracing import configure_tracing

S = TypeVar("S", bound=ServiceSettings)


def run_main(settings_type: type[S], serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """Build the settings from the environment, set up logging and tracing, and run ``serve``.

    Returns when the service drained after SIGTERM; a crash propagates (non-zero exit).
    """
    settings = settings_type()
    configure_logging(settings.service_name, settings.log_level, json=settings.log_json)
    provider = configure_tracing(settings.service_name, settings.otlp_endpoint, settings.trace_sample_ratio)
    logging.getLogger(__name__).info(
        "starting", extra={"grpc.port": settings.grpc_port, "admin.port": settings.admin_port}
    )
    try:
        asyncio.run(serve(settings))
    finally:
        provider.shutdown()


Wiring = Callable[[ServiceRuntime, EventProducer], Awaitable[None]]


async def connect_producer(settings: ServiceSettings) -> EventProducer:
    """Start the service's producer, retrying with backoff for ``kafka_connect_timeout_seconds``.

    Raises ``Unavailable`` naming the bootstrap address when no broker answered in time.
    """
    deadline = asyncio.get_running_loop().time() + settings.kafka_connect_timeout_seconds
    delay = 0.5
    while True:
        producer = EventProducer(
            settings.kafka_bootstrap,
            source=settings.service_name,
            delivery_timeout_s=settings.kafka_delivery_timeout_seconds,
        )
        try:
            await producer.start()
            return producer
        except KafkaError as exc:
            await producer.stop()
            if asyncio.get_running_loop().time() + delay > deadline:
                raise Unavailable(
                    f"Kafka at {settings.kafka_bootstrap} did not answer within "
                    f"{settings.kafka_connect_timeout_seconds}s ({exc}); start it with `aimesh up --infra-only` "
                    f"or set {settings.model_config.get('env_prefix', '')}KAFKA_BOOTSTRAP"
                ) from exc
            logging.getLogger(__name__).warning("Kafka not reachable yet, retrying: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def serve(settings: ServiceSettings, version: str, wire: Wiring, *, kafka_readiness: bool = True) -> None:
    """The standard service body: a producer (closed last), the ``kafka`` check, log shipping (unless
    ``ship_logs`` is off), then ``wire`` adds the parts.

    ``kafka`` is a readiness check when ``kafka_readiness`` is set (ingest, monitor: their main job needs
    the broker); otherwise it is a degraded check (``Probes.degraded``: reported by ``/readyz`` under
    ``degraded`` and known to liveness as a dependency down, never a 503) for a service whose main job
    goes on while the broker is away (feature serving, training runs, inference scoring).

    ``wire(runtime, producer)`` registers the service's gRPC server, consumers and checks; this then
    runs the runtime until SIGTERM.
    """
    runtime = ServiceRuntime(settings, version)
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    checks = runtime.probes.readiness if kafka_readiness else runtime.probes.degraded
    checks["kafka"] = producer.check_connected
    if settings.ship_logs:
        ship_logs(
            runtime,
            await open_spooling_sender(
                runtime, producer, settings, "logs", max_bytes=settings.ship_logs_spool_max_bytes
            ),
            settings,
        )
    await wire(runtime, producer)
    await runtime.run()


async def open_spooling_sender(
    runtime: ServiceRuntime, producer: EventProducer, settings: ServiceSettings, stream: str, *, max_bytes: int
) -> SpoolingSender:
    """A ``SpoolingSender`` over ``producer`` with the spool file ``<spool_path()>/<stream>.db``.

    Its drain runs as the part ``spool:<stream>``; the file is closed after the parts stopped (before the
    producer closes), once the records still waiting for Kafka's acknowledgement were written to it
    (``SpoolingSender.spool_unacknowledged``). Records still spooled at exit stay in the file and drain at
    the next start.
    Raises ``sqlite3.Error`` when the file cannot be opened (held by another process, corrupt).
    """
    spool = await Spool.open(
        settings.spool_path() / f"{stream}.db",
        name=f"{settings.service_name}.{stream}",
        max_bytes=max_bytes,
        max_records=settings.spool_max_records,
        when_full=settings.spool_when_full,
    )
    sender = SpoolingSender(producer, spool, source=settings.service_name, spool_after_s=settings.spool_after_seconds)
    runtime.add_part(f"spool:{stream}", sender.run, sender.stop)

    async def close() -> None:
        taken = await sender.spool_unacknowledged()
        if taken:
            logging.getLogger(__name__).info(
                "spooled %d records Kafka had not acknowledged at shutdown", taken, extra={"spool.name": spool.name}
            )
        await spool.close()

    runtime.add_cleanup(close)
    return sender


def ship_logs(runtime: ServiceRuntime, producer: EventSender, settings: ServiceSettings) -> LogShipper:
    """Attach a ``LogShipper`` to the root logger and run it as a part of ``runtime``.

    Records at or above ``ship_logs_level`` go to ``ship_logs_topic`` keyed by the service name, through
    ``producer`` (``serve`` passes a ``SpoolingSender``: logs wait in the spool while Kafka is away, up to
    ``ship_logs_spool_max_bytes``); the handler is detached after the parts stopped.
    """
    shipper = LogShipper(settings.service_name, level=settings.ship_logs_level.upper(), topic=settings.ship_logs_topic)
    root = logging.getLogger()
    root.addHandler(shipper)

    async def detach() -> None:
        root.removeHandler(shipper)

    runtime.add_part("log-shipper", lambda: shipper.run(producer), shipper.stop)
    runtime.add_cleanup(detach)
    return shipper
