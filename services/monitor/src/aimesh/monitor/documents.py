"""Elasticsearch documents and index templates (ECS-shaped), as pure functions of the events.

Every document has ``@timestamp``, ``ecs.version`` (``ECS_VERSION``), ``event.dataset`` and
``service.name``; predictions add ``request_id``, ``model.name``/``model.version``, ``score``,
``features.*`` (doubles), ``entity.*`` (keywords), ``latency_ms``, and for a Recommend answer
(``Prediction.k`` > 0) ``items``, ``context_items``, ``exclude_items`` (keyword lists, in event order)
and ``k``; logs add ``log.level``, ``log.logger``, ``message``, ``trace.id``, ``error.*`` and
``labels.*`` (ECS labels: flat keywords, dots in keys become underscores); dead letters (every
service's ``aimesh.<service>.dlq.v1``) go to ``<prefix>-deadletters`` with their reason, writer,
position, size, reference and a bounded preview, never their header values (trace spans are not
monitor's: the OpenTelemetry Collector writes them to the ``traces-aimesh-default`` data stream, see
``aimesh.devstack.otelcol``). The document id is the event id, so a redelivered event overwrites
its own document instead of adding one.

Field bound: each of ``features``, ``entity`` and ``labels`` keeps at most ``max_map_entries`` keys
(the first in key order), so one event cannot take its index past Elasticsearch's field limit
(``index.mapping.total_fields.limit``, 1000 by default). A cut map is named in ``truncated`` and the
number of keys left out is ``truncated_count``; the full event stays on Kafka. The item lists are cut
the same way at ``max_map_entries`` elements each (their first ones). In the templates ``entity``,
``labels`` and an alert's ``labels`` are ``flattened`` (one field however many keys), ``features.*``
are doubles, no string is detected as a date, and
``index.mapping.total_fields.ignore_dynamic_beyond_limit`` keeps a document whose new keys would pass
the limit (they stay in ``_source``, unmapped) instead of rejecting it.
"""

from __future__ import annotations

import base64
import copy
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aimesh.api.common.v1 import deadletter_pb2, signature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.distribution import DriftScores, Thresholds, bin_ranges
from aimesh.core.events import Event
from aimesh.monitor.drift_windows import Tally

Document = dict[str, Any]
DEFAULT_MAX_MAP_ENTRIES = 100
"""Keys kept per bounded map of a document (``features``, ``entity``, ``labels``)."""
ECS_VERSION = "8.11.0"
"""The Elastic Common Schema version the documents follow, written as ``ecs.version`` on every one."""
ECS: dict[str, str] = {"version": ECS_VERSION}
KINDS = ("predictions", "logs", "drift", "alerts", "deadletters")


def index_names(prefix: str) -> dict[str, str]:
    """Name written to and searched, by kind (``KINDS``): ``<prefix>-<kind>``.

    For the kinds in ``aimesh.monitor.lifecycle.ROLLED_KINDS`` it is a write alias over rolled-over
    backing indices; for ``alerts`` it is the index itself.
    """
    return {kind: f"{prefix}-{kind}" for kind in KINDS}


def _iso(ts: Any) -> str:
    return str(ts.ToDatetime(tzinfo=UTC).isoformat())


def trace_id_of(event: Event) -> str:
    """The trace id in the event's W3C ``traceparent`` header, or ''."""
    parts = (event.header("traceparent") or "").split("-")
    return parts[1] if len(parts) == 4 else ""


def _bounded(doc: Document, name: str, values: dict[str, Any], limit: int) -> dict[str, Any]:
    """``values`` with at most ``limit`` keys (the first in key order); records a cut in ``doc``."""
    if len(values) <= limit:
        return values
    kept = dict(sorted(values.items())[:limit])
    doc.setdefault("truncated", []).append(name)
    doc["truncated_count"] = doc.get("truncated_count", 0) + len(values) - limit
    return kept


def _bounded_list(doc: Document, name: str, values: Sequence[str], limit: int) -> list[str]:
    """The first ``limit`` of ``values``; records a cut in ``doc`` as ``_bounded`` does."""
    if len(values) <= limit:
        return list(values)
    doc.setdefault("truncated", []).append(name)
    doc["truncated_count"] = doc.get("truncated_count", 0) + len(values) - limit
    return list(values[:limit])


def prediction_document(
    prediction: inference_events.Prediction, trace_id: str = "", *, max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES
) -> Document:
    doc: Document = {
        "@timestamp": _iso(prediction.time),
        "ecs": dict(ECS),
        "event": {"dataset": "aimesh.predictions", "id": prediction.event_id},
        "service": {"name": "inference"},
        "request_id": prediction.request_id,
        "model": {"name": prediction.model_name, "version": prediction.model_version},
        "score": prediction.score,
        "features": {},
        "entity": {},
        "latency_ms": prediction.latency.ToNanoseconds() / 1e6,
        "route": inference_pb2.Route.Name(prediction.route),
        "alias": prediction.alias,
        "shadow": prediction.shadow,
        "feature_freshness_seconds": prediction.feature_freshness_seconds,
        "missing_features": list(prediction.missing_features),
    }
    doc["features"] = _bounded(doc, "features", dict(prediction.features), max_map_entries)
    doc["entity"] = _bounded(doc, "entity", dict(prediction.entity_ids), max_map_entries)
    if prediction.k > 0:
        for name in ("items", "context_items", "exclude_items"):
            doc[name] = _bounded_list(doc, name, getattr(prediction, name), max_map_entries)
        doc["k"] = prediction.k
    if prediction.tenant:
        doc["organization"] = {"id": prediction.tenant}
    if trace_id:
        doc["trace"] = {"id": trace_id}
    return doc


def log_document(
    record: monitor_events.LogRecord, event_id: str, *, max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES
) -> Document:
    level = monitor_events.LogLevel.Name(record.level).removeprefix("LOG_LEVEL_").lower()
    doc: Document = {
        "@timestamp": _iso(record.timestamp),
        "ecs": dict(ECS),
        "event": {"dataset": f"aimesh.{record.service or 'unknown'}", "id": event_id},
        "service": {"name": record.service},
        "log": {"level": level, "logger": record.logger},
        "message": record.message,
        "host": {"name": record.host},
    }
    labels = {key.replace(".", "_"): value for key, value in record.extra.items()}
    doc["labels"] = _bounded(doc, "labels", labels, max_map_entries)
    if record.tenant:
        doc["organization"] = {"id": record.tenant}
    if record.trace_id:
        doc["trace"] = {"id": record.trace_id}
    if record.span_id:
        doc["span"] = {"id": record.span_id}
    if record.error_type or record.error_message:
        doc["error"] = {
            "type": record.error_type,
            "message": record.error_message,
            "stack_trace": record.error_stack_trace,
        }
    return doc


def dead_letter_document(letter: deadletter_pb2.DeadLetter, event: Event, preview_bytes: int = 1024) -> Document:
    """The dead letter as operators search it; original header values are left out (they may hold PII)."""
    payload = letter.payload_preview if letter.payload_ref else letter.original_payload[:preview_bytes]
    doc: Document = {
        "@timestamp": _iso(letter.time),
        "ecs": dict(ECS),
        "event": {"dataset": "aimesh.deadletters", "id": event.id},
        "service": {"name": letter.service or (event.header("ce_source") or "")},
        "message": letter.message,
        "deadletter": {
            "reason": deadletter_pb2.ReasonCode.Name(letter.reason_code).removeprefix("REASON_CODE_"),
            "topic": event.topic,
            "source": letter.source,
            "field": letter.field,
            "event_id": letter.event_id,
            "masked_fields": list(letter.masked_fields),
            "header_keys": [h.key for h in letter.original_headers],
        },
        "payload": {
            "size": letter.payload_size or len(letter.original_payload),
            "ref": letter.payload_ref,
            "preview": payload[:preview_bytes].decode("utf-8", "replace"),
        },
    }
    original_type = next((h.value for h in letter.original_headers if h.key == "ce_type"), b"")
    if original_type:
        doc["deadletter"]["original_type"] = original_type.decode("utf-8", "replace")[:256]
    if letter.HasField("upstream"):
        doc["upstream"] = {
            "topic": letter.upstream.topic,
            "partition": letter.upstream.partition,
            "offset": letter.upstream.offset,
        }
    return doc


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def drift_document(report: monitor_pb2.DriftReport) -> Document:
    """The report, searchable, plus its protobuf bytes (``report_proto``) so GetDrift returns it unchanged."""
    thresholds = report.thresholds
    return {
        "@timestamp": _iso(report.window_end),
        "ecs": dict(ECS),
        "event": {"dataset": "aimesh.drift"},
        "service": {"name": "monitor"},
        "model": {"name": report.model_name, "version": report.model_version},
        "feature": report.feature,
        "kind": signature_pb2.InputKind.Name(report.kind) if report.kind else "",
        "psi": report.psi,
        "js_distance": report.js_distance,
        "wasserstein": report.wasserstein,
        "threshold": thresholds.psi,
        "thresholds": {
            "psi": thresholds.psi,
            "js_distance": thresholds.js_distance,
            "wasserstein_stddevs": thresholds.wasserstein_stddevs,
        },
        "drifted": report.drifted,
        "window": {"start": _iso(report.window_start), "end": _iso(report.window_end)},
        "sample_count": report.sample_count,
        "missing_count": report.missing_count,
        "reference_count": report.reference_count,
        "bins": [
            {
                "lower": _finite(b.lower),
                "upper": _finite(b.upper),
                "category": b.category,
                "reference_fraction": b.reference_fraction,
                "current_fraction": b.current_fraction,
            }
            for b in report.bins
        ],
        "report_proto": base64.b64encode(report.SerializeToString()).decode(),
    }


def drift_from_document(source: Document) -> monitor_pb2.DriftReport:
    return monitor_pb2.DriftReport.FromString(base64.b64decode(source["report_proto"]))


def drift_report(
    model: str,
    version: int,
    tally: Tally,
    scores: DriftScores,
    thresholds: Thresholds,
    *,
    start: datetime,
    end: datetime,
) -> monitor_pb2.DriftReport:
    """The report of one input (or of the score, ``tally.profile.feature`` empty) over ``[start, end)``."""
    profile = tally.profile
    report = monitor_pb2.DriftReport(
        model_name=model,
        model_version=version,
        feature=profile.feature,
        kind=profile.kind,
        psi=scores.psi,
        js_distance=scores.js_distance,
        wasserstein=scores.wasserstein,
        drifted=scores.drifted,
        thresholds=monitor_pb2.DriftThresholds(
            psi=thresholds.psi,
            js_distance=thresholds.js_distance,
            wasserstein_stddevs=thresholds.wasserstein_stddevs,
        ),
        sample_count=scores.sample_count,
        missing_count=tally.missing,
        reference_count=profile.count,
    )
    shares = zip(scores.reference_fractions, scores.current_fractions, strict=True)
    if profile.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
        categories = [*profile.categories, ""]
        report.bins.extend(
            monitor_pb2.DriftBin(category=c, reference_fraction=r, current_fraction=f)
            for c, (r, f) in zip(categories, shares, strict=True)
        )
    else:
        report.bins.extend(
            monitor_pb2.DriftBin(lower=lower, upper=upper, reference_fraction=r, current_fraction=f)
            for (lower, upper), (r, f) in zip(bin_ranges(profile), shares, strict=True)
        )
    report.window_start.FromDatetime(start)
    report.window_end.FromDatetime(end)
    return report


def alert_document(alert: monitor_events.Alert, revision: int = 0) -> Document:
    """The alert, searchable, plus its protobuf bytes (``alert_proto``) so ListAlerts returns it unchanged.

    ``@timestamp`` is when it was raised; ``alert.state`` the ``AlertState`` name; ``alert.revision`` the
    number of changes published for it (``AlertBook`` continues counting from it after a restart)."""
    doc: Document = {
        "@timestamp": _iso(alert.time),
        "ecs": dict(ECS),
        "event": {"dataset": "aimesh.alerts", "id": alert.alert_id},
        "service": {"name": alert.service or "monitor"},
        "alert": {
            "id": alert.alert_id,
            "kind": monitor_events.AlertKind.Name(alert.kind),
            "severity": monitor_events.Severity.Name(alert.severity),
            "severity_rank": int(alert.severity),
            "state": monitor_events.AlertState.Name(alert.state),
            "rule": alert.rule,
            "revision": revision,
            "acknowledged_by": alert.acknowledged_by,
        },
        "model": {"name": alert.model_name, "version": alert.model_version},
        "feature": alert.feature,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "alert_proto": base64.b64encode(alert.SerializeToString()).decode(),
    }
    if alert.HasField("resolved_time"):
        doc["alert"]["resolved_time"] = _iso(alert.resolved_time)
    if alert.HasField("acknowledged_time"):
        doc["alert"]["acknowledged_time"] = _iso(alert.acknowledged_time)
    if alert.trace_id:
        doc["trace"] = {"id": alert.trace_id}
    return doc


def alert_from_document(source: Document) -> monitor_events.Alert:
    return monitor_events.Alert.FromString(base64.b64decode(source["alert_proto"]))


def alert_revision(source: Document) -> int:
    """The ``alert.revision`` of an alert document (0 for documents written before revisions were counted)."""
    return int(source.get("alert", {}).get("revision", 0))


_ECS_BASE: dict[str, Any] = {
    "@timestamp": {"type": "date"},
    "ecs": {"properties": {"version": {"type": "keyword"}}},
    "message": {"type": "text"},
    "service": {"properties": {"name": {"type": "keyword"}}},
    "trace": {"properties": {"id": {"type": "keyword"}}},
    "span": {"properties": {"id": {"type": "keyword"}}},
    "event": {"properties": {"dataset": {"type": "keyword"}, "id": {"type": "keyword"}}},
    "model": {"properties": {"name": {"type": "keyword"}, "version": {"type": "long"}}},
    "organization": {"properties": {"id": {"type": "keyword"}}},
}
_FLAT_KEYWORDS: dict[str, Any] = {"type": "flattened", "ignore_above": 1024}
"""A string map as one field, however many keys (each key searchable as ``<field>.<key>``)."""
_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "number_of_replicas": 0,
    "mapping": {"total_fields": {"ignore_dynamic_beyond_limit": True}},
}
_TRUNCATION: dict[str, Any] = {"truncated": {"type": "keyword"}, "truncated_count": {"type": "long"}}


def _mappings() -> dict[str, dict[str, Any]]:
    """Mappings by kind, each ``properties`` without the shared ECS fields (``_ECS_BASE``)."""
    return {
        "predictions": {
            "dynamic_templates": [
                {
                    "features_as_double": {
                        "path_match": "features.*",
                        "match_mapping_type": ["long", "double"],
                        "mapping": {"type": "double"},
                    }
                },
            ],
            "properties": {
                "request_id": {"type": "keyword"},
                "score": {"type": "double"},
                "features": {"type": "object", "dynamic": True},
                "entity": _FLAT_KEYWORDS,
                "latency_ms": {"type": "double"},
                "route": {"type": "keyword"},
                "alias": {"type": "keyword"},
                "shadow": {"type": "boolean"},
                "feature_freshness_seconds": {"type": "double"},
                "missing_features": {"type": "keyword"},
                "items": {"type": "keyword", "ignore_above": 256},
                "context_items": {"type": "keyword", "ignore_above": 256},
                "exclude_items": {"type": "keyword", "ignore_above": 256},
                "k": {"type": "integer"},
                **_TRUNCATION,
            },
        },
        "logs": {
            "properties": {
                "log": {"properties": {"level": {"type": "keyword"}, "logger": {"type": "keyword"}}},
                "host": {"properties": {"name": {"type": "keyword"}}},
                "labels": _FLAT_KEYWORDS,
                **_TRUNCATION,
                "error": {
                    "properties": {
                        "type": {"type": "keyword"},
                        "message": {"type": "text"},
                        "stack_trace": {"type": "text", "index": False},
                    }
                },
            },
        },
        "drift": {
            "properties": {
                "feature": {"type": "keyword"},
                "kind": {"type": "keyword"},
                "psi": {"type": "double"},
                "js_distance": {"type": "double"},
                "wasserstein": {"type": "double"},
                "threshold": {"type": "double"},
                "thresholds": {
                    "properties": {
                        "psi": {"type": "double"},
                        "js_distance": {"type": "double"},
                        "wasserstein_stddevs": {"type": "double"},
                    }
                },
                "drifted": {"type": "boolean"},
                "window": {"properties": {"start": {"type": "date"}, "end": {"type": "date"}}},
                "sample_count": {"type": "long"},
                "missing_count": {"type": "long"},
                "reference_count": {"type": "long"},
                "bins": {"type": "object", "enabled": False},
                "report_proto": {"type": "binary"},
            }
        },
        "alerts": {
            "properties": {
                "alert": {
                    "properties": {
                        "id": {"type": "keyword"},
                        "kind": {"type": "keyword"},
                        "severity": {"type": "keyword"},
                        "severity_rank": {"type": "integer"},
                        "state": {"type": "keyword"},
                        "rule": {"type": "keyword"},
                        "revision": {"type": "long"},
                        "resolved_time": {"type": "date"},
                        "acknowledged_by": {"type": "keyword"},
                        "acknowledged_time": {"type": "date"},
                    }
                },
                "feature": {"type": "keyword"},
                "labels": _FLAT_KEYWORDS,
                "value": {"type": "double"},
                "threshold": {"type": "double"},
                "alert_proto": {"type": "binary"},
            }
        },
        "deadletters": {
            "dynamic": False,
            "properties": {
                "deadletter": {
                    "properties": {
                        "reason": {"type": "keyword"},
                        "topic": {"type": "keyword"},
                        "source": {"type": "keyword"},
                        "field": {"type": "keyword", "ignore_above": 1024},
                        "event_id": {"type": "keyword", "ignore_above": 1024},
                        "masked_fields": {"type": "keyword"},
                        "header_keys": {"type": "keyword", "ignore_above": 256},
                        "original_type": {"type": "keyword"},
                    }
                },
                "payload": {
                    "properties": {
                        "size": {"type": "long"},
                        "ref": {"type": "keyword"},
                        "preview": {"type": "text", "index": False},
                    }
                },
                "upstream": {
                    "properties": {
                        "topic": {"type": "keyword"},
                        "partition": {"type": "integer"},
                        "offset": {"type": "long"},
                    }
                },
            },
        },
    }


def index_templates(prefix: str) -> dict[str, dict[str, Any]]:
    """Composable index templates by name (``<prefix>-<kind>``): ``index_patterns`` (``<prefix>-<kind>*``, so
    both the backing indices of a write alias and an index of that name) plus ``template`` (settings and
    mappings: no date detection, numbers mapped as numbers, maps bounded; see the module doc)."""
    names = index_names(prefix)
    templates: dict[str, dict[str, Any]] = {}
    for kind, mapping in _mappings().items():
        properties = {**_ECS_BASE, **mapping.pop("properties")}
        templates[names[kind]] = copy.deepcopy(
            {
                "index_patterns": [f"{names[kind]}*"],
                "template": {
                    "settings": _SETTINGS,
                    "mappings": {"date_detection": False, **mapping, "properties": properties},
                },
                "priority": 200,
            }
        )
    return templates


def mapped_type(mappings: dict[str, Any], path: str) -> str | None:
    """The type ``mappings`` (a template's) gives the dotted field ``path``, or None when nothing maps it.

    An explicit property wins; a key under a ``flattened`` field is ``flattened``; a key under an object
    is typed by the first dynamic template whose ``path_match`` matches (``<object>.*``), and its type
    then is the template's (``match_mapping_type`` is not checked here).
    """
    properties: dict[str, Any] = mappings.get("properties", {})
    parts = path.split(".")
    for i, part in enumerate(parts):
        spec = properties.get(part)
        if spec is None:
            break
        if spec.get("type") == "flattened":
            return "flattened"
        if i == len(parts) - 1:
            return str(spec.get("type", "object"))
        properties = spec.get("properties", {})
    for entry in mappings.get("dynamic_templates", []):
        rule = next(iter(entry.values()))
        pattern = str(rule.get("path_match", ""))
        if pattern.endswith(".*") and path.startswith(pattern[:-1]) and "." not in path[len(pattern) - 1 :]:
            return str(rule["mapping"]["type"])
    return None
