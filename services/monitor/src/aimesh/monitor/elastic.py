"""The monitor's Elasticsearch store: templates, idempotent bulk indexing, drift and alert queries.

``bulk_index`` writes with ``op_type=index`` and ``_id`` = event id, so repeating a batch overwrites the
same documents. Per-document outcomes are classified:

- transient (429 after the bulk helper's own retries, 5xx, a connection error or timeout): it raises
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

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elastic_transport import ApiError, TransportError
from elasticsearch import AsyncElasticsearch, BadRequestError
from elasticsearch.helpers import async_bulk

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.errors import Unavailable
from aimesh.monitor.documents import Document, alert_from_document, index_names, index_templates
from aimesh.monitor.drift import open_ended_ranges

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexRequest:
    """One document to write."""

    index: str
    doc_id: str
    document: Document


@dataclass(frozen=True, slots=True)
class Rejected:
    """A document Elasticsearch refused for good: its ``ReasonCode`` name, HTTP status and error."""

    doc_id: str
    status: int
    reason: str
    reason_code: str = "DOCUMENT_REJECTED"


_FIELD_LIMITS = ("limit of total fields", "limit of mapping depth", "limit of nested fields", "total_fields")
_TOO_LARGE = ("immense term", "max_bytes_length_exceeded", "too large", "content_too_long")


def classify_rejection(status: int, error: object) -> str | None:
    """The ``ReasonCode`` name of a per-document bulk error, or None when it is transient (429, 5xx)."""
    if status == 429 or status >= 500:
        return None
    text = str(error).lower()
    if any(marker in text for marker in _FIELD_LIMITS):
        return "TOO_MANY_FIELDS"
    if status == 413 or any(marker in text for marker in _TOO_LARGE):
        return "DOCUMENT_TOO_LARGE"
    return "DOCUMENT_REJECTED"


@dataclass(frozen=True, slots=True)
class AlertQuery:
    model_name: str = ""
    kind: int = 0
    min_severity: int = 0
    since: datetime | None = None
    offset: int = 0
    size: int = 100


class ElasticStore:
    """Async Elasticsearch access for the monitor (one client; ``close()`` releases it)."""

    def __init__(self, url: str, prefix: str, *, request_timeout: float = 30.0) -> None:
        self.url = url
        self.prefix = prefix
        self.indices = index_names(prefix)
        self._es = AsyncElasticsearch(url, request_timeout=request_timeout)

    async def ensure_templates(self) -> None:
        """Create or update the index templates (idempotent), and add the templates' fields to the indices
        that already exist (a template only shapes indices created after it), so a field added by a newer
        version is typed there too; an existing index that holds a field with another type keeps it (logged
        as a warning). Raises ``Unavailable`` when ES is down."""
        try:
            for name, body in index_templates(self.prefix).items():
                await self._es.indices.put_index_template(name=name, **body)
                try:
                    await self._es.indices.put_mapping(
                        index=body["index_patterns"],
                        properties=body["template"]["mappings"]["properties"],
                        allow_no_indices=True,
                    )
                except BadRequestError as exc:
                    log.warning("existing %s indices keep their mapping: %s", name, exc.message)
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch at {self.url}: cannot create index templates: {exc}") from exc

    async def check_ready(self) -> None:
        """Readiness: the cluster answers with status green or yellow."""
        try:
            health = await self._es.cluster.health(timeout="2s")
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch at {self.url}: {exc}") from exc
        if health["status"] not in ("green", "yellow"):
            raise Unavailable(f"Elasticsearch at {self.url} is {health['status']}")

    async def bulk_index(self, requests: Sequence[IndexRequest], *, refresh: bool = False) -> list[Rejected]:
        """Index ``requests`` in one bulk call; see the module doc for what raises and what is returned."""
        if not requests:
            return []
        actions = [{"_op_type": "index", "_index": r.index, "_id": r.doc_id, "_source": r.document} for r in requests]
        try:
            _, errors = await async_bulk(
                self._es, actions, raise_on_error=False, raise_on_exception=True, refresh=refresh, max_retries=2
            )
        except ApiError as exc:
            if exc.meta.status != 413:
                raise Unavailable(f"Elasticsearch bulk request failed: {exc}") from exc
            if len(requests) == 1:
                return [Rejected(requests[0].doc_id, 413, str(exc), "DOCUMENT_TOO_LARGE")]
            half = len(requests) // 2
            log.warning("bulk request too large (413); splitting it", extra={"documents": len(requests)})
            return [
                *await self.bulk_index(requests[:half], refresh=refresh),
                *await self.bulk_index(requests[half:], refresh=refresh),
            ]
        except TransportError as exc:
            raise Unavailable(f"Elasticsearch bulk request failed: {exc}") from exc
        rejected: list[Rejected] = []
        for item in errors if isinstance(errors, list) else []:
            result = next(iter(item.values()))
            status = int(result.get("status", 0))
            code = classify_rejection(status, result.get("error"))
            if code is None:
                raise Unavailable(f"Elasticsearch could not index {result.get('_id')}: {status} {result.get('error')}")
            rejected.append(Rejected(str(result.get("_id")), status, str(result.get("error")), code))
        return rejected

    async def index_one(self, index: str, doc_id: str, document: Document) -> None:
        """Index one document (overwriting the same id); raises ``Unavailable`` when ES refuses it."""
        try:
            await self._es.index(index=index, id=doc_id, document=document)
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch could not index {doc_id} into {index}: {exc}") from exc

    async def score_counts(
        self, model: str, version: int, edges: Sequence[float], start: datetime, end: datetime
    ) -> list[int]:
        """Live (non-shadow) scores of ``model`` ``version`` in ``[start, end)`` counted per open-ended bin."""
        ranges = [
            {k: v for k, v in (("from", lower), ("to", upper)) if abs(v) != float("inf")}
            for lower, upper in open_ended_ranges(edges)
        ]
        query = {
            "bool": {
                "filter": [
                    {"term": {"model.name": model}},
                    {"term": {"model.version": version}},
                    {"term": {"shadow": False}},
                    {"range": {"@timestamp": {"gte": start.isoformat(), "lt": end.isoformat()}}},
                ]
            }
        }
        try:
            result = await self._es.search(
                index=self.indices["predictions"],
                query=query,
                size=0,
                aggs={"bins": {"range": {"field": "score", "ranges": ranges, "keyed": False}}},
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        except (ApiError, TransportError) as exc:
            raise Unavailable(f"Elasticsearch score aggregation failed: {exc}") from exc
        aggs = result.body.get("aggregations")
        if aggs is None:
            return [0] * len(ranges)
        return [int(bucket["doc_count"]) for bucket in aggs["bins"]["buckets"]]

    async def search_alerts(self, q: AlertQuery) -> tuple[list[monitor_events.Alert], bool]:
        """Alerts matching ``q``, newest first, and whether more follow."""
        filters: list[dict[str, Any]] = []
        if q.model_name:
            filters.append({"term": {"model.name": q.model_name}})
        if q.kind:
            filters.append({"term": {"alert.kind": monitor_events.AlertKind.Name(q.kind)}})
        if q.min_severity:
            filters.append({"range": {"alert.severity_rank": {"gte": q.min_severity}}})
        if q.since is not None:
            filters.append({"range": {"@timestamp": {"gte": q.since.isoformat()}}})
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
        hits = [alert_from_document(h["_source"]) for h in result.body["hits"]["hits"]]
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
