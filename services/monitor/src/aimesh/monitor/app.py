"""monitor wiring: the MonitorService API, the indexing consumer, the registry replay, the drift loop.

- Indexing: one consumer group (``<group>``, shared by replicas) over ``topics``, and one
  (``<group>-deadletters``) over every service's DLQ (``dlq_topics``); each polled partition batch is
  bulk-indexed and its offsets committed only after Elasticsearch acknowledged the bulk. Events that
  can never be indexed go to ``aimesh.monitor.dlq.v1`` (see ``aimesh.monitor.indexing``).
- Registry: ``aimesh.registry.models.v1`` replayed from the earliest offset in a group of this instance
  alone, so every replica knows every reference profile.
- Drift: evaluated every ``drift_interval_seconds`` and on ``GetDriftReport``.
Readiness: Kafka and Elasticsearch. The index templates are created before anything is consumed.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from importlib.metadata import version

import grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.deadletter import dead_letter_publisher
from aimesh.core.errors import InvalidArgument
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.model_catalog import ModelCatalog
from aimesh.core.runner import ServiceRuntime
from aimesh.core.validation import check_length
from aimesh.monitor.access import ACCESS
from aimesh.monitor.drift_monitor import DriftMonitor, DriftPolicy
from aimesh.monitor.elastic import AlertQuery, ElasticStore
from aimesh.monitor.indexing import EventIndexer
from aimesh.monitor.settings import MonitorSettings

SERVICE_NAME = monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].full_name
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_RESULT_WINDOW = 10_000
"""Elasticsearch's default ``index.max_result_window``: from + size of a search may not exceed it."""
_MAX_TOKEN_CHARS = 20


class MonitorServiceApi(monitor_pb2_grpc.MonitorServiceServicer):
    """The gRPC adapter over ``DriftMonitor`` and the alert index."""

    def __init__(self, drift: DriftMonitor, store: ElasticStore) -> None:
        self._drift = drift
        self._store = store

    async def GetDriftReport(
        self, request: monitor_pb2.GetDriftReportRequest, context: grpc.aio.ServicerContext
    ) -> monitor_pb2.GetDriftReportResponse:
        if not request.model_name:
            raise InvalidArgument("model_name is required")
        check_length("model_name", request.model_name)
        if request.feature:
            raise InvalidArgument("only score drift is reported for now: leave feature empty")
        window = request.window.ToTimedelta().total_seconds() if request.HasField("window") else None
        if window is not None and window <= 0:
            raise InvalidArgument("window must be positive")
        end = request.window_end.ToDatetime(tzinfo=UTC) if request.HasField("window_end") else None
        report = await self._drift.report(request.model_name, request.model_version, window_s=window, end=end)
        return monitor_pb2.GetDriftReportResponse(report=report)

    async def ListAlerts(
        self, request: monitor_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext
    ) -> monitor_pb2.ListAlertsResponse:
        check_length("model_name", request.model_name)
        token = request.page.page_token
        if token and (len(token) > _MAX_TOKEN_CHARS or not token.isdigit()):
            raise InvalidArgument(f"page_token {token[:_MAX_TOKEN_CHARS]!r} is not a token this service issued")
        if request.page.page_size < 0:
            raise InvalidArgument(f"page.page_size must not be negative, got {request.page.page_size}")
        offset = int(token or 0)
        size = min(request.page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        if offset + size + 1 > MAX_RESULT_WINDOW:
            raise InvalidArgument(
                f"page_token {token!r} pages past the first {MAX_RESULT_WINDOW} alerts a listing can reach; "
                "narrow the query (since, model_name, kind, min_severity)"
            )
        query = AlertQuery(
            model_name=request.model_name,
            kind=request.kind,
            min_severity=request.min_severity,
            since=request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None,
            offset=offset,
            size=size,
        )
        alerts, more = await self._store.search_alerts(query)
        return monitor_pb2.ListAlertsResponse(
            alerts=alerts, page=common_pb2.PageResponse(next_page_token=str(offset + size) if more else "")
        )


async def wire_monitor(settings: MonitorSettings, runtime: ServiceRuntime, producer: EventProducer) -> DriftMonitor:
    """Add the monitor parts to ``runtime``; returns the drift monitor (tests drive it directly)."""
    store = ElasticStore(settings.elasticsearch_url, settings.index_prefix)
    runtime.add_cleanup(store.close)
    await store.ensure_templates()
    catalog = ModelCatalog()
    policy = DriftPolicy(
        window_s=settings.drift_window_seconds,
        interval_s=settings.drift_interval_seconds,
        min_samples=settings.drift_min_samples,
        threshold=settings.psi_threshold,
        critical=settings.psi_critical,
        epsilon=settings.psi_epsilon,
        default_alias=settings.default_alias,
    )
    drift = DriftMonitor(catalog, store, producer, settings.alerts_topic, policy)
    dead_letters = dead_letter_publisher(producer, settings)
    indexer = EventIndexer(
        store,
        dead_letters,
        max_document_bytes=settings.max_document_bytes,
        max_map_entries=settings.max_map_entries,
    )
    api = MonitorServiceApi(drift, store)
    runtime.add_grpc(
        GrpcServer(
            settings,
            [lambda server: monitor_pb2_grpc.add_MonitorServiceServicer_to_server(api, server)],
            [SERVICE_NAME],
            access=ACCESS,
        )
    )
    runtime.add_consumer(
        EventConsumer(
            settings.kafka_bootstrap,
            group_id=settings.group_id,
            topics=settings.topics,
            batch_handler=indexer.handle_batch,
            service=settings.service_name,
            dead_letters=dead_letters,
        )
    )
    if settings.dlq_topics:
        runtime.add_consumer(
            EventConsumer(
                settings.kafka_bootstrap,
                group_id=f"{settings.group_id}-deadletters",
                topics=settings.dlq_topics,
                batch_handler=indexer.handle_batch,
                service=settings.service_name,
                dead_letters=dead_letters,
            )
        )
    runtime.add_consumer(
        EventConsumer(
            settings.kafka_bootstrap,
            group_id=f"{settings.group_id}-registry-{uuid.uuid4().hex[:12]}",
            topics=[settings.registry_topic],
            handler=catalog.handle,
            service=settings.service_name,
            dead_letters=dead_letters,
        )
    )
    runtime.add_part("drift", drift.run, drift.stop)
    runtime.probes.readiness["elasticsearch"] = store.check_ready
    return drift


async def serve_monitor(settings: MonitorSettings) -> None:
    """Run the monitor service until SIGTERM."""

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        await wire_monitor(settings, runtime, producer)

    await serve(settings, version("aimesh-monitor"), wire)
