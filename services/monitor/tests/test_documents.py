"""Elasticsearch documents of Prediction and LogRecord events, and the event -> index request mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.duration_pb2 import Duration

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.events import Event, PoisonEvent, cloudevent_headers
from aimesh.monitor.documents import alert_document, alert_from_document, index_templates, log_document
from aimesh.monitor.indexing import index_request

TRACE = "0af7651916cd43dd8448eb211c80319c"


def event_of(message: inference_events.Prediction | monitor_events.LogRecord, ce_id: str = "ce-1") -> Event:
    headers = cloudevent_headers(event_type=message.DESCRIPTOR.full_name, source="t", event_id=ce_id)
    headers.append(("traceparent", f"00-{TRACE}-b7ad6b7169203331-01".encode()))
    return Event("topic", 0, 5, b"k", message.SerializeToString(), tuple(headers), 0)


def test_prediction_document() -> None:
    p = inference_events.Prediction(
        request_id="r-1",
        event_id="e-1",
        model_name="fraud",
        model_version=3,
        score=0.25,
        features={"v:a": 1.5},
        latency=Duration(nanos=2_500_000),
        route=inference_pb2.ROUTE_PINNED,
        entity_ids={"card": "c-1"},
        missing_features=["v:b"],
    )
    p.time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    request = index_request(event_of(p), "aim")
    assert request.index == "aim-predictions"
    assert request.doc_id == "e-1"
    doc = request.document
    assert doc["@timestamp"] == "2026-01-02T03:04:05+00:00"
    assert doc["request_id"] == "r-1"
    assert doc["model"] == {"name": "fraud", "version": 3}
    assert doc["score"] == 0.25
    assert doc["features"] == {"v:a": 1.5}
    assert doc["entity"] == {"card": "c-1"}
    assert doc["latency_ms"] == pytest.approx(2.5)
    assert doc["route"] == "ROUTE_PINNED"
    assert doc["missing_features"] == ["v:b"]
    assert doc["trace"] == {"id": TRACE}
    assert doc["event"]["dataset"] == "aimesh.predictions"


def test_a_shadow_prediction_is_indexed_with_its_route_and_flag() -> None:
    """What an operator filters shadow scores by (route ROUTE_SHADOW, shadow true), both exact-match fields."""
    p = inference_events.Prediction(
        request_id="r-1", event_id="e-2", model_name="m", model_version=4, route=inference_pb2.ROUTE_SHADOW, shadow=True
    )
    doc = index_request(event_of(p), "aim").document
    assert (doc["route"], doc["shadow"], doc["model"]) == ("ROUTE_SHADOW", True, {"name": "m", "version": 4})
    live = index_request(event_of(inference_events.Prediction(event_id="e-3", route=inference_pb2.ROUTE_CANARY)), "aim")
    assert (live.document["route"], live.document["shadow"]) == ("ROUTE_CANARY", False)
    props = index_templates("aim")["aim-predictions"]["template"]["mappings"]["properties"]
    assert (props["route"], props["shadow"]) == ({"type": "keyword"}, {"type": "boolean"})


def test_log_document_uses_the_event_id() -> None:
    record = monitor_events.LogRecord(
        level=monitor_events.LOG_LEVEL_ERROR,
        service="ingest",
        message="boom",
        trace_id=TRACE,
        logger="aimesh.x",
        extra={"topic": "t"},
        error_type="ValueError",
        error_message="bad",
    )
    record.timestamp.FromDatetime(datetime(2026, 1, 2, tzinfo=UTC))
    request = index_request(event_of(record, "log-7"), "aim")
    assert (request.index, request.doc_id) == ("aim-logs", "log-7")
    assert request.document == log_document(record, "log-7")
    doc = request.document
    assert doc["log"] == {"level": "error", "logger": "aimesh.x"}
    assert doc["service"] == {"name": "ingest"}
    assert doc["event"]["dataset"] == "aimesh.ingest"
    assert doc["trace"] == {"id": TRACE}
    assert doc["labels"] == {"topic": "t"}
    assert doc["error"]["type"] == "ValueError"


def test_unknown_or_malformed_events_are_poison() -> None:
    bad = Event("t", 0, 0, None, b"\xff\xff", tuple(cloudevent_headers(event_type="x.Y", source="s")), 0)
    with pytest.raises(PoisonEvent, match=r"not x\.Y"):
        index_request(bad, "aim")
    garbage = Event(
        "t",
        0,
        0,
        None,
        b"\xff\xff",
        tuple(cloudevent_headers(event_type=inference_events.Prediction.DESCRIPTOR.full_name, source="s")),
        0,
    )
    with pytest.raises(PoisonEvent, match="not a valid"):
        index_request(garbage, "aim")


def test_alert_round_trips_through_its_document() -> None:
    alert = monitor_events.Alert(alert_id="a", kind=monitor_events.ALERT_KIND_DRIFT, value=0.3, model_name="m")
    doc = alert_document(alert)
    assert doc["alert"]["kind"] == "ALERT_KIND_DRIFT"
    assert alert_from_document(doc) == alert


def test_templates_cover_every_index_with_ecs_fields() -> None:
    templates = index_templates("aim")
    assert set(templates) == {
        "aim-predictions",
        "aim-logs",
        "aim-drift",
        "aim-alerts",
        "aim-deadletters",
    }
    for name, body in templates.items():
        assert body["index_patterns"] == [f"{name}*"]
        props = body["template"]["mappings"]["properties"]
        assert props["@timestamp"] == {"type": "date"}
        assert props["ecs"] == {"properties": {"version": {"type": "keyword"}}}
        assert props["service"]["properties"]["name"]["type"] == "keyword"
    assert templates["aim-predictions"]["template"]["mappings"]["properties"]["request_id"] == {"type": "keyword"}


def test_the_callers_tenant_becomes_organization_id_and_is_left_out_when_empty() -> None:
    tagged = inference_events.Prediction(event_id="e-2", model_name="m", tenant="acme")
    assert index_request(event_of(tagged), "aim").document["organization"] == {"id": "acme"}
    untagged = inference_events.Prediction(event_id="e-3", model_name="m")
    assert "organization" not in index_request(event_of(untagged), "aim").document
    record = monitor_events.LogRecord(service="inference", message="m", tenant="acme")
    assert log_document(record, "log-8")["organization"] == {"id": "acme"}
    assert index_templates("aim")["aim-predictions"]["template"]["mappings"]["properties"]["organization"] == {
        "properties": {"id": {"type": "keyword"}}
    }


def test_a_ranked_answer_indexes_its_item_lists_and_k_and_a_score_has_none() -> None:
    ranked = inference_events.Prediction(
        event_id="e-4",
        model_name="next",
        model_version=2,
        items=["i3", "i1"],
        context_items=["i9"],
        exclude_items=["i2", "i4"],
        k=2,
        route=inference_pb2.ROUTE_FALLBACK,
    )
    doc = index_request(event_of(ranked), "aim").document
    assert (doc["items"], doc["context_items"], doc["exclude_items"], doc["k"]) == (
        ["i3", "i1"],
        ["i9"],
        ["i2", "i4"],
        2,
    )
    assert doc["model"] == {"name": "next", "version": 2} and doc["route"] == "ROUTE_FALLBACK"
    scored = index_request(event_of(inference_events.Prediction(event_id="e-5", model_name="m")), "aim").document
    assert not {"items", "context_items", "exclude_items", "k"} & set(scored)
    props = index_templates("aim")["aim-predictions"]["template"]["mappings"]["properties"]
    assert (
        props["items"] == props["context_items"] == props["exclude_items"] == {"type": "keyword", "ignore_above": 256}
    )
    assert props["k"] == {"type": "integer"}


def test_item_lists_are_cut_at_the_map_bound_and_flagged() -> None:
    wide = inference_events.Prediction(event_id="e-6", k=1, items=["a"], exclude_items=[f"x{i}" for i in range(5)])
    doc = index_request(event_of(wide), "aim", max_map_entries=3).document
    assert doc["exclude_items"] == ["x0", "x1", "x2"] and doc["items"] == ["a"]
    assert doc["truncated"] == ["exclude_items"] and doc["truncated_count"] == 2
