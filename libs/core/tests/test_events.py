"""CloudEvents headers, trace propagation and payload decoding (no network)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from aimesh.api.inference.v1 import events_pb2
from aimesh.core.events import Event, PoisonEvent, cloudevent_headers
from aimesh.core.tracing import extract_context


def make_event(value: bytes, headers: list[tuple[str, bytes]]) -> Event:
    return Event("t", 0, 5, b"k", value, tuple(headers), 0)


def test_headers_carry_cloudevents_fields_and_trace_context() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("publish") as span:
        headers = dict(cloudevent_headers(event_type="aimesh.api.x.v1.Y", source="ingest", event_id="e-1"))
        trace_id = span.get_span_context().trace_id
    assert headers["ce_id"] == b"e-1"
    assert headers["ce_type"] == b"aimesh.api.x.v1.Y"
    assert headers["ce_source"] == b"ingest"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/protobuf"
    assert b"T" in headers["ce_time"]
    parent = trace.get_current_span(extract_context(headers.items())).get_span_context()
    assert parent.trace_id == trace_id


def test_event_id_defaults_to_position_and_header_wins() -> None:
    assert make_event(b"", []).id == "t/0/5"
    assert make_event(b"", [("ce_id", b"x"), ("ce_id", b"y")]).id == "y"


def test_parse_round_trips_and_rejects_garbage_and_wrong_type() -> None:
    msg = events_pb2.Prediction(request_id="r", score=0.5)
    ok = make_event(msg.SerializeToString(), [("ce_type", b"aimesh.api.inference.v1.Prediction")])
    assert ok.parse(events_pb2.Prediction) == msg
    with pytest.raises(PoisonEvent) as bad:
        make_event(b"\xff\xff\xff", []).parse(events_pb2.Prediction)
    assert bad.value.reason_code == "DECODE_ERROR"
    with pytest.raises(PoisonEvent, match="expected ce_type"):
        make_event(msg.SerializeToString(), [("ce_type", b"other.Type")]).parse(events_pb2.Prediction)
