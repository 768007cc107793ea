"""monitor wiring: the gRPC API, the Kafka consumer and the admin app on one runtime.

Skeleton (foundation issue): the API answers UNIMPLEMENTED through the generated base class
and the consumer acknowledges events without effects; later issues add the real logic.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.bus import EventProducer
from aimesh.core.events import Event
from aimesh.core.runner import ServiceRuntime
from aimesh.monitor.settings import MonitorSettings

log = logging.getLogger(__name__)
SERVICE_NAME = monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].full_name


class MonitorServiceApi(monitor_pb2_grpc.MonitorServiceServicer):
    """The MonitorService API; methods not overridden answer UNIMPLEMENTED."""


async def handle_event(event: Event) -> None:
    """Transport-free handler for one consumed event (no effects yet)."""
    log.debug("event received", extra={"event.id": event.id, "topic": event.topic})


async def serve_monitor(settings: MonitorSettings) -> None:
    """Run the monitor service until SIGTERM."""

    api = MonitorServiceApi()  # type: ignore[abstract]  # skeleton: unimplemented methods answer UNIMPLEMENTED

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        runtime.add_standard_parts(
            registrar=lambda server: monitor_pb2_grpc.add_MonitorServiceServicer_to_server(api, server),
            service_name=SERVICE_NAME,
            topics=settings.topics,
            handler=handle_event,
            producer=producer,
        )

    await serve(settings, version("aimesh-monitor"), wire)
