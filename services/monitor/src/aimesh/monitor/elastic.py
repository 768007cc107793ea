"""The monitor's Elasticsearch store: templates and lifecycle, idempotent bulk indexing, prediction
aggregations (the values of the score or of one input over a window), drift report and alert queries.

Lifecycle (see ``aimesh.monitor.lifecycle``): ``ensure_templates`` installs templates, ILM policies when
the cluster has ILM, and the write aliases; ``enforce_lifecycle`` is the monitor's own rollover and
retention round where the cluster has no ILM, and the alerts' retention everywhere.

``bulk_index`` writes with ``op_type=index`` and ``_id`` = event id, so repeating a batch overwrites the
same documents. Its bodies are NDJSON serialised once with orjson (``aimesh.monitor.bulk``: the format
and how it differs from the client's stdlib serializer), at most ``BULK_CHUNK`` documents per request,
sent with the client's ``bulk``. Per-document outcomes are classified:

- transient (429 still after two resends of those documents, 2 s and 4 s later, as ``helpers.async_bulk``
  with ``max_retries=2`` did; 5xx, a connection error or timeout): it raises
  ``Unavailable`` and the caller retries the whole batch with backoff; nothing is ever skipped;
- permanent for that document: returned as ``Rejected`` with a ``ReasonCode`` name, so the caller
  dead-letters its event and the batch's other documents stay indexed: ``TOO_MANY_FIELDS`` (the field,
  depth or nested-field limit of the mapping), ``DOCUMENT_TOO_LARGE`` (a term over Lucene's 32 KiB, or
  a request Elasticsearch refused with 413 even alone) and ``DOCUMENT_REJECTED`` (any other 4xx: a
  mapping conflict, an unparseable value).

A bulk request refused as a whole with 413 (over ``http.max_content_length``) is split in halves until
each part is accepted or holds one document.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from elastic_transport import ApiError, TransportError
from elasticsearch import AsyncElasticsearch, BadRequestError

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.errors import Unavailable
from aimesh.monitor.bulk import RESPONSE_FILTER, RETRY_STATUS, IndexRequest, Rejected, bulk_body, outcomes
from aimesh.monitor.documents import (
    Document,
    alert_from_document,
    alert_revision,
    drift_from_document,
    index_names,
    index_templates,
)
from aimesh.monitor.lifecycle import (
    ROLLED_KINDS,
    Lifecycle,
    backing_index,
    expired_backing_indices,
    ilm_policy,
    ilm_settings,
)

log = logging.getLogger(__name__)
ALERTS_EXPIRED_PER_ROUND = 1000
"""Alerts past their retention deleted per lifecycle round (the rest in the next rounds)."""

_MAX_RESULT_WINDOW = 10_000
"""Elasticsearch's default ``index.max_result_window``: from + size of a search may not exceed it."""

BULK_CHUNK = 500
"""Documents per bulk request at most (the client's ``helpers.async_bulk`` default)."""


@dataclass(frozen=True, slots=True)
class PredictionWindow:
    """The live (non-shadow) predictions of one model version with ``@timestamp`` in ``[start, end)``."""

    model: str
    version: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Filters of an alert search (each unset one matches everything); ``states``: any of these
    ``AlertState`` values; ``alert_id``: that alert only."""

    model_name: str = ""
    kind: int = 0
    min_severity: int = 0
    since: datetime | None = None
    offset: int = 0
    size: int = 100
    states: tuple[int, ...] = ()
    feature: str = ""
    alert_id: str = ""


class ElasticStore:
    """Async Elasticsearch access for the monitor (one client; ``close()`` releases it)."""

    def __init__(
        self, url: str, prefix: str, *, request_timeout: float = 30.0, lifecycle: Lifecycle | None = None
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.indices = index_names(prefix)
        self.lifecycle = lifecycle or Lifecycle()
        self.has_ilm = False
        """Whether the cluster has ILM, as ``ensure_templates`` found it."""
        self._es = AsyncElasticsearch(url, request_timeout=request_timeout)
        self.retry_backoff_s: tuple[float, ...] = (2.0, 4.0)
        """Waits before each resend of the documents answered 429 (those of ``helpers.async_bulk``)."""

    async def ensure_templates(self) -> None:
        """Install the lifecycle and the index templates (idempotent), then bootstrap the write aliases.

        With ILM in the cluster, one policy per rolled kind (named like its alias) and the templates name
        it; without ILM (the integ-test-zip), ``enforce_lifecycle`` does the same work on a timer. The
        templates' fields are added to the indices that already exist (a template only shapes indices
        created after it), so a field added by a newer version is typed there too; an existing index that
        holds a field with another type keeps it (logged as a warning). Each rolled kind then gets its
        first backing index ``<alias>-000001`` carrying the write alias, unless the alias exists; an older
        index that has the alias's name is kept as it is (logged: that kind is not rolled over until it
        is deleted or reindexed). Raises ``Unavailable`` when ES is down."""
        try:
            self.has_ilm = await self._has_ilm()
            templates = index_templates(self.prefix)
            for kind in ROLLED_KINDS:
                alias = self.indices[kind]
                if self.has_ilm:
                    await self._es.ilm.put_lifecycle(name=alias, policy=ilm_policy(self.lifecycle, kind))
                    templates[alias]["template"]["settings"].update(ilm_settings(alias))
            for name, body in templates.items():
                await self._es.indices.put_index_template(name=name, **body)
                try:
                    await self._es.indices.put_mapping(
                        index=body["index_patterns"],
                        properties=body["template"]["mappings"]["properties"],
                        allow_no_indices=True,
                    )
                except BadRequestError as exc:
                    log.warning("existing %s indices keep their mapping: %s", name, exc.message)
            for kind in ROLLED_KINDS:
                await self._bootstrap_alias(self.indices[kind])
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch at {self.url}: cannot install templates and lifecycle: {exc}") from exc

    async def _has_ilm(self) -> bool:
        """Whether the cluster runs index lifecycle management (the integ-test-zip has no such module)."""
        try:
            await self._es.ilm.get_status()
        except ApiError as exc:
            if exc.meta.status in (400, 404, 405, 410):
                return False
            raise
        return True

    async def _bootstrap_alias(self, alias: str) -> None:
        if await self._es.indices.exists_alias(name=alias):
            return
        if await self._es.indices.exists(index=alias):
            log.warning(
                "index %s predates the write alias; it is kept and not rolled over (delete or reindex it)", alias
            )
            return
        try:
            await self._es.indices.create(index=backing_index(alias), aliases={alias: {"is_write_index": True}})
        except BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise

    async def enforce_lifecycle(self, now: datetime | None = None) -> None:
        """One round of what ILM would do, for a cluster without it: roll each write alias over when
        ``Lifecycle.rollover_conditions`` hold and delete its expired backing indices
        (``expired_backing_indices``); with or without ILM, delete the alerts raised more than their
        retention ago (``_expire_alerts``). Raises ``Unavailable`` when ES is down."""
        moment = now or datetime.now(UTC)
        now_ms = int(moment.timestamp() * 1000)
        try:
            if not self.has_ilm:
                for kind in ROLLED_KINDS:
                    await self._roll(self.indices[kind], self.lifecycle.retention_days[kind], now_ms)
            await self._expire_alerts(moment - timedelta(days=self.lifecycle.retention_days["alerts"]))
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch at {self.url}: lifecycle round failed: {exc}") from exc

    async def _expire_alerts(self, cutoff: datetime) -> None:
        """Delete up to ``ALERTS_EXPIRED_PER_ROUND`` alerts raised before ``cutoff`` (the oldest first); by
        search and bulk delete, since the integ-test-zip has no ``_delete_by_query``."""
        result = await self._es.search(
            index=self.indices["alerts"],
            query={"range": {"@timestamp": {"lt": cutoff.isoformat()}}},
            sort=[{"@timestamp": "asc"}],
            size=ALERTS_EXPIRED_PER_ROUND,
            source=False,
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        hits = result.body["hits"]["hits"]
        if hits:
            await self._es.bulk(operations=[{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits])

    async def _roll(self, alias: str, retention_days: int, now_ms: int) -> None:
        if not await self._es.indices.exists_alias(name=alias):
            return
        await self._es.indices.rollover(alias=alias, conditions=self.lifecycle.rollover_conditions)
        found = await self._es.indices.get_settings(index=f"{alias}-*", name="index.creation_date", flat_settings=True)
        created = {name: int(spec["settings"]["index.creation_date"]) for name, spec in found.body.items()}
        expired = expired_backing_indices(alias, created, now_ms, retention_days)
        if expired:
            log.info("deleting indices past their retention", extra={"indices": expired})
            await self._es.indices.delete(index=expired, ignore_unavailable=True)  # another replica may be first

    async def check_ready(self) -> None:
        """Readiness: the cluster answers with status green or yellow."""
        try:
            health = await self._es.cluster.health(timeout="2s")
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch at {self.url}: {exc}") from exc
        if health["status"] not in ("green", "yellow"):
            raise Unavailable(f"Elasticsearch at {self.url} is {health['status']}")

    async def bulk_index(self, requests: Sequence[IndexRequest], *, refresh: bool = False) -> list[Rejected]:
        """Index ``requests`` in bulk requests of at most ``BULK_CHUNK`` documents; see the module doc for
        what raises and what is returned. A document that is not JSON raises ``TypeError`` before anything
        of its chunk is sent (``EventIndexer`` dead-letters such an event before it gets here)."""
        rejected: list[Rejected] = []
        for start in range(0, len(requests), BULK_CHUNK):
            rejected += await self._bulk_chunk(requests[start : start + BULK_CHUNK], refresh)
        return rejected

    async def _bulk_chunk(self, requests: Sequence[IndexRequest], refresh: bool) -> list[Rejected]:
        """One bulk request, its 429 items sent again after each of ``retry_backoff_s``, split on 413."""
        pending: list[IndexRequest] = list(requests)
        rejected: list[Rejected] = []
        for attempt in range(len(self.retry_backoff_s) + 1):
            if attempt:
                await asyncio.sleep(self.retry_backoff_s[attempt - 1])
            try:
                response = await self._es.bulk(
                    operations=bulk_body(pending),  # type: ignore[arg-type]  # bytes: the NDJSON serializer sends them as is
                    refresh=refresh,
                    filter_path=RESPONSE_FILTER,
                )
            except ApiError as exc:
                if exc.meta.status == 413:
                    return [*rejected, *await self._split(pending, str(exc), refresh)]
                if exc.meta.status == RETRY_STATUS and attempt < len(self.retry_backoff_s):
                    continue
                raise Unavailable(f"Elasticsearch bulk request failed: {exc}") from exc
            except TransportError as exc:
                raise Unavailable(f"Elasticsearch bulk request failed: {exc}") from exc
            outcome = outcomes(pending, response.body)
            rejected += outcome.rejected
            pending = outcome.retry
            if not pending:
                return rejected
        retries = len(self.retry_backoff_s)
        raise Unavailable(f"Elasticsearch answered {RETRY_STATUS} to {len(pending)} documents after {retries} retries")

    async def _split(self, requests: Sequence[IndexRequest], error: str, refresh: bool) -> list[Rejected]:
        """A request refused with 413: its halves on their own, or the one document refused as too large."""
        if len(requests) == 1:
            return [Rejected(requests[0].doc_id, 413, error, "DOCUMENT_TOO_LARGE")]
        half = len(requests) // 2
        log.warning("bulk request too large (413); splitting it", extra={"documents": len(requests)})
        return [
            *await self._bulk_chunk(requests[:half], refresh),
            *await self._bulk_chunk(requests[half:], refresh),
        ]

    async def index_one(self, index: str, doc_id: str, document: Document) -> None:
        """Index one document (overwriting the same id); raises ``Unavailable`` when ES refuses it."""
        try:
            await self._es.index(index=index, id=doc_id, document=document)
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch could not index {doc_id} into {index}: {exc}") from exc

    async def range_counts(
        self, window: PredictionWindow, field: str, ranges: Sequence[tuple[float, float]], *, feature: str = ""
    ) -> tuple[list[int], int]:
        """Live predictions of ``window`` counted per ``[lower, upper)`` range of ``field`` (``score`` or
        ``features.<name>``; infinite edges leave a side open), and how many had no value: with ``feature``,
        those listing it in ``missing_features`` or without the field."""
        aggregation = {
            "range": {
                "field": field,
                "ranges": [
                    {k: v for k, v in (("from", lower), ("to", upper)) if abs(v) != float("inf")}
                    for lower, upper in ranges
                ],
                "keyed": False,
            }
        }
        buckets, missing = await self._present_buckets(window, field, aggregation, feature=feature)
        if buckets is None:
            return [0] * len(ranges), missing
        return [int(bucket["doc_count"]) for bucket in buckets], missing

    async def term_counts(
        self, window: PredictionWindow, field: str, *, feature: str, size: int
    ) -> tuple[dict[float, int], int]:
        """Live predictions of ``window`` counted per value of ``field`` (at most ``size`` values, the most
        frequent), and how many had none (as ``range_counts``)."""
        aggregation = {"terms": {"field": field, "size": size}}
        buckets, missing = await self._present_buckets(window, field, aggregation, feature=feature)
        return {float(b["key"]): int(b["doc_count"]) for b in buckets or []}, missing

    async def _present_buckets(
        self, window: PredictionWindow, field: str, aggregation: dict[str, Any], *, feature: str
    ) -> tuple[list[dict[str, Any]] | None, int]:
        present: dict[str, Any] = {"bool": {"filter": [{"exists": {"field": field}}]}}
        if feature:
            present["bool"]["must_not"] = [{"term": {"missing_features": feature}}]
        query = {
            "bool": {
                "filter": [
                    {"term": {"model.name": window.model}},
                    {"term": {"model.version": window.version}},
                    {"term": {"shadow": False}},
                    {"range": {"@timestamp": {"gte": window.start.isoformat(), "lt": window.end.isoformat()}}},
                ]
            }
        }
        try:
            result = await self._es.search(
                index=self.indices["predictions"],
                query=query,
                size=0,
                track_total_hits=True,
                aggs={"present": {"filter": present, "aggs": {"values": aggregation}}},
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch aggregation of {field} failed: {exc}") from exc
        total = int(result.body["hits"]["total"]["value"])
        aggs = result.body.get("aggregations")
        if aggs is None:
            return None, total
        return list(aggs["present"]["values"]["buckets"]), total - int(aggs["present"]["doc_count"])

    async def newest_drift(self, model: str, version: int, *, features: int) -> list[monitor_pb2.DriftReport]:
        """The newest indexed drift report of each input (and of the score) of ``model`` ``version``; at
        most ``features`` of them."""
        query = {"bool": {"filter": [{"term": {"model.name": model}}, {"term": {"model.version": version}}]}}
        try:
            result = await self._es.search(
                index=self.indices["drift"],
                query=query,
                sort=[{"window.end": "desc"}],
                collapse={"field": "feature"},
                size=max(features, 1),
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch drift search failed: {exc}") from exc
        hits = [hit["_source"] for hit in result.body["hits"]["hits"]]
        return [drift_from_document(source) for source in hits if "report_proto" in source]

    async def search_alerts(self, q: AlertQuery) -> tuple[list[monitor_events.Alert], bool]:
        """Alerts matching ``q``, newest first, and whether more follow."""
        sources, more = await self._search_alert_sources(q)
        return [alert_from_document(source) for source in sources], more

    async def open_alerts(self, page_size: int = 1000) -> list[tuple[monitor_events.Alert, int]]:
        """Every FIRING or ACKNOWLEDGED alert with its ``alert.revision``, newest first (``AlertBook``'s
        restart state); raises ``Unavailable`` when ES is down. At most ``MAX_RESULT_WINDOW`` are read."""
        found: list[tuple[monitor_events.Alert, int]] = []
        states = (monitor_events.ALERT_STATE_FIRING, monitor_events.ALERT_STATE_ACKNOWLEDGED)
        more = True
        while more and len(found) + page_size <= _MAX_RESULT_WINDOW:
            sources, more = await self._search_alert_sources(
                AlertQuery(states=states, offset=len(found), size=page_size)
            )
            found.extend((alert_from_document(source), alert_revision(source)) for source in sources)
        return found

    async def _search_alert_sources(self, q: AlertQuery) -> tuple[list[Document], bool]:
        filters: list[dict[str, Any]] = []
        if q.model_name:
            filters.append({"term": {"model.name": q.model_name}})
        if q.kind:
            filters.append({"term": {"alert.kind": monitor_events.AlertKind.Name(q.kind)}})
        if q.min_severity:
            filters.append({"range": {"alert.severity_rank": {"gte": q.min_severity}}})
        if q.since is not None:
            filters.append({"range": {"@timestamp": {"gte": q.since.isoformat()}}})
        if q.states:
            filters.append({"terms": {"alert.state": [monitor_events.AlertState.Name(s) for s in q.states]}})
        if q.feature:
            filters.append({"term": {"feature": q.feature}})
        if q.alert_id:
            filters.append({"term": {"alert.id": q.alert_id}})
        try:
            result = await self._es.search(
                index=self.indices["alerts"],
                query={"bool": {"filter": filters}},
                sort=[{"@timestamp": "desc"}, {"alert.id": "asc"}],
                from_=q.offset,
                size=q.size + 1,
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch alert search failed: {exc}") from exc
        hits: list[Document] = [h["_source"] for h in result.body["hits"]["hits"]]
        return hits[: q.size], len(hits) > q.size

    async def refresh(self) -> None:
        await self._es.indices.refresh(
            index=list(self.indices.values()), ignore_unavailable=True, allow_no_indices=True
        )

    @property
    def client(self) -> AsyncElasticsearch:
        return self._es

    async def close(self) -> None:
        await self._es.close()
