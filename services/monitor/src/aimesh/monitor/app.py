"""monitor wiring: the MonitorService API, the indexing consumer, the registry replay, the drift loop.

- Indexing: one consumer group (``<group>``, shared by replicas) over ``topics``, and one
  (``<group>-deadletters``) over every service's DLQ (``dlq_topics``); each polled partition batch is
  bulk-indexed and its offsets committed only after Elasticsearch acknowledged the bulk. Events that
  can never be indexed go to ``aimesh.monitor.dlq.v1`` (see ``aimesh.monitor.indexing``).
- Registry: ``aimesh.registry.models.v1`` replayed from the earliest offset in a group of this instance
  alone, so every replica knows every reference profile.
- Drift: the indexed predictions feed streaming windows per model version (``aimesh.monitor.drift_monitor``);
  each closed window's per-input and score reports are indexed and alerted on (``aimesh.monitor.alerting``,
  whose open alerts are loaded from the alerts index before anything is consumed); ``GetDrift`` returns the
  newest, ``GetDriftReport`` computes one over any window from the indexed predictions.
- Lifecycle: rollover and retention (``ElasticStore.enforce_lifecycle``) every ``lifecycle_interval_seconds``.
- Service levels: the indexing consumer's predictions also feed ``ServiceLevelTracker`` once indexed;
  ``ServiceLevelRules`` evaluates the alert rules every ``slo_interval_seconds`` and ``GetServiceLevels``
  reads the windows. Alerts go through one ``AlertBook``, rebuilt from ``<prefix>-alerts`` at start;
  ``AcknowledgeAlert`` acknowledges through it.
Readiness: Kafka and Elasticsearch. The index templates are created before anything is consumed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC
from importlib.metadata import version

import grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.core.app import serve
from aimesh.core.auth import current_principal
from aimesh.core.bus import EventConsumer, EventProducer
from aimesh.core.deadletter import dead_letter_publisher
from aimesh.core.distribution import Thresholds
from aimesh.core.errors import InvalidArgument, NotFound
from aimesh.core.events import Event
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.model_catalog import ModelCatalog
from aimesh.core.periodic import PeriodicRefresh
from aimesh.core.runner import ServiceRuntime
from aimesh.core.validation import check_length
from aimesh.monitor.access import ACCESS
from aimesh.monitor.alerting import AlertBook
from aimesh.monitor.drift_monitor import DriftMonitor, DriftPolicy
from aimesh.monitor.elastic import AlertQuery, ElasticStore
from aimesh.monitor.indexing import EventIndexer
from aimesh.monitor.service_levels import ServiceLevelTracker
from aimesh.monitor.settings import MonitorSettings
from aimesh.monitor.slo_rules import ServiceLevelRules, SloPolicy

log = logging.getLogger(__name__)
SERVICE_NAME = monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].full_name
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_RESULT_WINDOW = 10_000
"""Elasticsearch's default ``index.max_result_window``: from + size of a search may not exceed it."""
_MAX_TOKEN_CHARS = 20
DEFAULT_LEVELS_WINDOW_S = 300.0
"""``GetServiceLevels``' window when unset (the service levels keep at least this much)."""


class MonitorServiceApi(monitor_pb2_grpc.MonitorServiceServicer):
    """The gRPC adapter over ``DriftMonitor``, the alert index, the ``AlertBook`` and the service levels."""

    def __init__(
        self,
        drift: DriftMonitor,
        store: ElasticStore,
        alerts: AlertBook,
        levels: ServiceLevelTracker,
        catalog: ModelCatalog,
    ) -> None:
        self._drift = drift
        self._store = store
        self._alerts = alerts
        self._levels = levels
        self._catalog = catalog

    async def GetDriftReport(
        self, request: monitor_pb2.GetDriftReportRequest, context: grpc.aio.ServicerContext
    ) -> monitor_pb2.GetDriftReportResponse:
        if not request.model_name:
            raise InvalidArgument("model_name is required")
        check_length("model_name", request.model_name)
        check_length("feature", request.feature)
        window = request.window.ToTimedelta().total_seconds() if request.HasField("window") else None
        if window is not None and window <= 0:
            raise InvalidArgument("window must be positive")
        end = request.window_end.ToDatetime(tzinfo=UTC) if request.HasField("window_end") else None
        report = await self._drift.report(
            request.model_name, request.model_version, feature=request.feature, window_s=window, end=end
        )
        return monitor_pb2.GetDriftReportResponse(report=report)

    async def GetDrift(
        self, request: monitor_pb2.GetDriftRequest, context: grpc.aio.ServicerContext
    ) -> monitor_pb2.GetDriftResponse:
        if not request.model_name:
            raise InvalidArgument("model_name is required")
        check_length("model_name", request.model_name)
        if request.model_version < 0:
            raise InvalidArgument(f"model_version must not be negative, got {request.model_version}")
        return await self._drift.drift(request.model_name, request.model_version)

    async def ListAlerts(
        self, request: monitor_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext
    ) -> monitor_pb2.ListAlertsResponse:
        check_length("model_name", request.model_name)
        check_length("feature", request.feature)
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
                "narrow the query (since, model_name, kind, min_severity, state, feature)"
            )
        query = AlertQuery(
            model_name=request.model_name,
            kind=request.kind,
            min_severity=request.min_severity,
            since=request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None,
            offset=offset,
            size=size,
            states=(request.state,) if request.state else (),
            feature=request.feature,
        )
        alerts, more = await self._store.search_alerts(query)
        return monitor_pb2.ListAlertsResponse(
            alerts=alerts, page=common_pb2.PageResponse(next_page_token=str(offset + size) if more else "")
        )

    async def AcknowledgeAlert(
        self, request: monitor_pb2.AcknowledgeAlertRequest, context: grpc.aio.ServicerContext
    ) -> monitor_pb2.AcknowledgeAlertResponse:
        """Acknowledge an open alert as ``actor`` (else as the authenticated caller's subject)."""
        if not request.alert_id:
            raise InvalidArgument("alert_id is required")
        check_length("alert_id", request.alert_id)
        check_length("actor", request.actor)
        principal = current_principal()
        actor = request.actor or (principal.subject if principal is not None else "")
        if not actor:
            raise InvalidArgument("actor is required when the call is not authenticated")
        return monitor_pb2.AcknowledgeAlertResponse(alert=await self._alerts.acknowledge(request.alert_id, actor))

    async def GetServiceLevels(
        self, request: monitor_pb2.GetServiceLevelsRequest, context: grpc.aio.ServicerContext
    ) -> monitor_pb2.GetServiceLevelsResponse:
        """The model's levels over the window ending now; a registered model without predictions since
        start gets empty levels, a model neither registered nor seen ``NotFound``."""
        if not request.model_name:
            raise InvalidArgument("model_name is required")
        check_length("model_name", request.model_name)
        window = request.window.ToTimedelta().total_seconds() if request.HasField("window") else DEFAULT_LEVELS_WINDOW_S
        if window <= 0 or window > self._levels.longest_window_s:
            raise InvalidArgument(
                f"window must be positive and at most {self._levels.longest_window_s:g} s (the longest window kept)"
            )
        levels = self._levels.levels(request.model_name, window)
        if levels is None:
            if request.model_name not in self._catalog.models():
                raise NotFound(f"model {request.model_name!r} is unknown: not registered and no predictions seen")
            levels = self._levels.empty_levels(request.model_name, window)
        return monitor_pb2.GetServiceLevelsResponse(levels=levels)


def observed(
    handle: Callable[[Sequence[Event]], Awaitable[None]], observe: Callable[[Sequence[Event]], None]
) -> Callable[[Sequence[Event]], Awaitable[None]]:
    """A batch handler running ``handle`` then, once it returned (the batch is indexed), ``observe``."""

    async def handler(events: Sequence[Event]) -> None:
        await handle(events)
        observe(events)

    return handler


def drift_policy(settings: MonitorSettings) -> DriftPolicy:
    """The drift policy of ``settings``: default thresholds, each model's overrides over them."""
    defaults = Thresholds(
        psi=settings.psi_threshold,
        js_distance=settings.js_threshold,
        wasserstein_stddevs=settings.wasserstein_threshold_stddevs,
    )
    return DriftPolicy(
        window_s=settings.drift_window_seconds,
        window_count=settings.drift_window_count,
        interval_s=settings.drift_interval_seconds,
        min_samples=settings.drift_min_samples,
        thresholds=defaults,
        per_model={
            model: replace(defaults, **override.model_dump(exclude_none=True))
            for model, override in settings.drift_thresholds.items()
        },
        critical=settings.psi_critical,
        epsilon=settings.psi_epsilon,
        max_versions=settings.drift_max_versions,
        default_alias=settings.default_alias,
    )


async def wire_monitor(settings: MonitorSettings, runtime: ServiceRuntime, producer: EventProducer) -> DriftMonitor:
    """Add the monitor parts to ``runtime``; returns the drift monitor (tests drive it directly)."""
    store = ElasticStore(settings.elasticsearch_url, settings.index_prefix, lifecycle=settings.lifecycle())
    runtime.add_cleanup(store.close)
    await store.ensure_templates()
    lifecycle = PeriodicRefresh(store.enforce_lifecycle, lambda: "index lifecycle round failed; retried", log)
    catalog = ModelCatalog()
    alerts = AlertBook(store, producer, settings.alerts_topic, update_interval_s=settings.alert_update_interval_seconds)
    await alerts.load()
    drift = DriftMonitor(catalog, store, alerts, drift_policy(settings))
    slo = slo_policy(settings)
    levels = ServiceLevelTracker(
        longest_window_s=max(slo.longest_window_s, DEFAULT_LEVELS_WINDOW_S),
        slot_seconds=settings.slo_slot_seconds,
        max_models=settings.slo_max_models,
        thresholds=slo.thresholds(),
    )
    rules = ServiceLevelRules(levels, alerts, slo)
    dead_letters = dead_letter_publisher(producer, settings)
    indexer = EventIndexer(
        store,
        dead_letters,
        max_document_bytes=settings.max_document_bytes,
        max_map_entries=settings.max_map_entries,
        observer=drift.observe,
    )
    api = MonitorServiceApi(drift, store, alerts, levels, catalog)
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
            batch_handler=observed(indexer.handle_batch, levels.observe_events),
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

    async def stop_lifecycle() -> None:
        lifecycle.stop()

    runtime.add_part("lifecycle", lambda: lifecycle.run(settings.lifecycle_interval_seconds), stop_lifecycle)
    runtime.add_part("service-levels", rules.run, rules.stop)
    runtime.probes.readiness["elasticsearch"] = store.check_ready
    return drift


def slo_policy(settings: MonitorSettings) -> SloPolicy:
    """The service-level rules' policy from the ``MONITOR_SLO_*`` settings."""
    return SloPolicy(
        interval_s=settings.slo_interval_seconds,
        window_s=settings.slo_window_seconds,
        min_requests=settings.slo_min_requests,
        latency_p99_ms=settings.slo_latency_p99_ms,
        error_rate=settings.slo_error_rate,
        fallback_rate=settings.slo_fallback_rate,
        freshness_p50_s=settings.slo_freshness_p50_seconds,
        target=settings.slo_target,
        slo_latency_ms=settings.slo_latency_ms,
        burn_rate=settings.slo_burn_rate,
        burn_long_s=settings.slo_burn_long_window_seconds,
        burn_short_s=settings.slo_burn_short_window_seconds,
    )


async def serve_monitor(settings: MonitorSettings) -> None:
    """Run the monitor service until SIGTERM."""

    async def wire(runtime: ServiceRuntime, producer: EventProducer) -> None:
        await wire_monitor(settings, runtime, producer)

    await serve(settings, version("aimesh-monitor"), wire)
