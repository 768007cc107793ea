"""Elasticsearch ``_bulk`` bodies and per-document outcomes, as pure functions (transport-free).

Bodies are NDJSON, serialised once with orjson: per document an ``index`` action line
(``{"index":{"_index":...,"_id":...}}``: op_type index, ``_id`` = event id, so a repeat overwrites)
and its source line. A source is what the client's stdlib serializer (``elasticsearch.JsonSerializer``)
wrote for the same dict, byte for byte, for every JSON value monitor's documents hold: UTF-8 (never
``\\u`` escapes but for control characters), compact separators, key order kept, floats in their
shortest form (``1e+16``), integers up to 2**64 - 1, int/float/bool/None keys as their JSON text, and
dates, datetimes, UUIDs and Decimals as that serializer's ``default`` gives them. One difference:
NaN and +-Infinity become ``null`` (the stdlib wrote ``NaN``/``Infinity`` tokens, which Elasticsearch
refuses, so the whole document was rejected); ``null`` is what ``documents`` writes for a non-finite
drift value too. A value neither handles (a set, an object) raises ``TypeError`` (``orjson.JSONEncodeError``).

``outcomes`` reads a bulk response's items back, in request order, into the documents to retry (429)
and those refused for good (``Rejected`` with a ``ReasonCode`` name, see ``classify_rejection``);
any other transient status raises ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from elasticsearch.serializer import JsonSerializer

from aimesh.core.errors import Unavailable

Document = dict[str, Any]
RETRY_STATUS = 429
RESPONSE_FILTER = "errors,items.*.status,items.*.error"
"""``filter_path`` of a bulk request: per item only its status and error, in request order."""

_OPTIONS = orjson.OPT_NON_STR_KEYS
_default = JsonSerializer().default


@dataclass(frozen=True, slots=True)
class IndexRequest:
    """One document to write; ``encoded`` is its ``encode_source`` bytes when the caller already has them."""

    index: str
    doc_id: str
    document: Document
    encoded: bytes | None = field(default=None, compare=False, repr=False)


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
    if status == RETRY_STATUS or status >= 500:
        return None
    text = str(error).lower()
    if any(marker in text for marker in _FIELD_LIMITS):
        return "TOO_MANY_FIELDS"
    if status == 413 or any(marker in text for marker in _TOO_LARGE):
        return "DOCUMENT_TOO_LARGE"
    return "DOCUMENT_REJECTED"


def encode_source(document: Mapping[str, Any]) -> bytes:
    """``document`` as its bulk source line (without the newline); see the module doc for the format."""
    return orjson.dumps(document, default=_default, option=_OPTIONS)


def bulk_body(requests: Sequence[IndexRequest]) -> bytes:
    """The NDJSON body indexing ``requests`` (action line, source line, each ending in a newline)."""
    lines: list[bytes] = []
    for r in requests:
        lines.append(orjson.dumps({"index": {"_index": r.index, "_id": r.doc_id}}))
        lines.append(r.encoded if r.encoded is not None else encode_source(r.document))
    lines.append(b"")
    return b"\n".join(lines)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one bulk response says: the requests to send again (429) and those refused for good."""

    retry: list[IndexRequest]
    rejected: list[Rejected]


def outcomes(requests: Sequence[IndexRequest], response: Mapping[str, Any]) -> Outcome:
    """Match ``response`` items (request order) to ``requests``; raises ``Unavailable`` on a 5xx item."""
    if not response.get("errors"):
        return Outcome([], [])
    items = response.get("items") or []
    if len(items) != len(requests):
        raise Unavailable(f"Elasticsearch answered {len(items)} bulk items for {len(requests)} documents")
    retry: list[IndexRequest] = []
    rejected: list[Rejected] = []
    for request, item in zip(requests, items, strict=True):
        result = next(iter(item.values()))
        status = int(result.get("status", 500))
        if 200 <= status < 300:
            continue
        if status == RETRY_STATUS:
            retry.append(request)
            continue
        error = result.get("error")
        code = classify_rejection(status, error)
        if code is None:
            raise Unavailable(f"Elasticsearch could not index {request.doc_id}: {status} {error}")
        rejected.append(Rejected(request.doc_id, status, str(error), code))
    return Outcome(retry, rejected)
