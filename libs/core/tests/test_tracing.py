"""Trace context across gRPC and Kafka records (``aimesh.core.tracing``, ``aimesh.core.channels``), no network
beyond loopback: a client span's context reaches the server's span through the metadata, and consumed
records' spans continue the context in their headers."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aimesh.core.channels import open_channel
from aimesh.core.events import Event, cloudevent_headers
from aimesh.core.grpc_server import ErrorMappingInterceptor
from aimesh.core.tracing import build_provider, child_span, extract_context, inject_headers, record_spans, tracer

ECHO = "/aimesh.test.Echo/Echo"


@pytest.fixture
def finished() -> Iterator[InMemorySpanExporter]:
    """The spans ended during the test (the global provider is installed once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def only(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_a_unary_call_is_a_client_span_and_the_server_span_continues_it(
    unused_tcp_port: int, finished: InMemorySpanExporter
) -> None:
    seen: list[str] = []

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.extend(v for k, v in context.invocation_metadata() if k == "traceparent")
        return request

    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    handler = grpc.method_handlers_generic_handler(
        "aimesh.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{unused_tcp_port}")
    await server.start()
    channel = open_channel(f"127.0.0.1:{unused_tcp_port}")
    try:
        with tracer(__name__).start_as_current_span("caller") as caller:
            assert await channel.unary_unary(ECHO)(b"hi", timeout=5) == b"hi"
    finally:
        await channel.close()
        await server.stop(0)
    spans = finished.get_finished_spans()
    client = next(s for s in spans if s.name == ECHO and s.kind is SpanKind.CLIENT)
    assert client.kind is SpanKind.CLIENT
    assert client.parent is not None and client.parent.span_id == caller.get_span_context().span_id
    assert client.attributes is not None and client.attributes["rpc.grpc.status_code"] == 0
    assert len(seen) == 1 and seen[0].split("-")[2] == format(client.context.span_id, "016x")


async def test_the_server_span_is_the_child_of_the_callers_client_span(
    unused_tcp_port: int, finished: InMemorySpanExporter
) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    handler = grpc.method_handlers_generic_handler(
        "aimesh.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{unused_tcp_port}")
    await server.start()
    channel = open_channel(f"127.0.0.1:{unused_tcp_port}")
    try:
        with tracer(__name__).start_as_current_span("caller"):
            await channel.unary_unary(ECHO)(b"x", timeout=5)
    finally:
        await channel.close()
        await server.stop(0)
    spans = finished.get_finished_spans()
    client = next(s for s in spans if s.name == ECHO and s.kind is SpanKind.CLIENT)
    served = next(s for s in spans if s.name == ECHO and s.kind is SpanKind.SERVER)
    assert served.context.trace_id == client.context.trace_id
    assert served.parent is not None and served.parent.span_id == client.context.span_id


async def test_a_failed_call_marks_the_client_span(unused_tcp_port: int, finished: InMemorySpanExporter) -> None:
    channel = open_channel(f"127.0.0.1:{unused_tcp_port}")  # nothing listens there
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary(ECHO)(b"x", timeout=2)
    finally:
        await channel.close()
    client = only(finished.get_finished_spans(), ECHO)
    assert client.kind is SpanKind.CLIENT
    assert client.status.status_code is StatusCode.ERROR
    assert (
        client.attributes is not None
        and client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    )


def test_record_spans_continue_each_records_context_or_start_a_trace(finished: InMemorySpanExporter) -> None:
    scope = tracer(__name__)
    with scope.start_as_current_span("upstream") as upstream:
        traced = Event("t", 3, 10, None, b"", tuple(cloudevent_headers(event_type="x", source="s")), 0)
    bare = Event("t", 3, 11, None, b"", tuple(cloudevent_headers(event_type="x", source="s")), 0)
    with scope.start_as_current_span("unrelated"), record_spans(scope, "consume t", [traced, bare]) as spans:
        assert len(spans) == 2
    first, second = (s for s in finished.get_finished_spans() if s.name == "consume t")
    assert first.kind is SpanKind.CONSUMER
    assert first.context.trace_id == upstream.get_span_context().trace_id
    assert first.parent is not None and first.parent.span_id == upstream.get_span_context().span_id
    assert second.parent is None, "a record without trace context starts its own trace"
    assert second.context.trace_id != first.context.trace_id
    assert first.attributes is not None and first.attributes["messaging.kafka.offset"] == 10


def test_an_exception_marks_every_record_span_failed(finished: InMemorySpanExporter) -> None:
    events = [Event("t", 0, n, None, b"", (), 0) for n in range(2)]
    with pytest.raises(RuntimeError), record_spans(tracer(__name__), "consume t", events):
        raise RuntimeError("store down")
    spans = [s for s in finished.get_finished_spans() if s.name == "consume t"]
    assert len(spans) == 2 and all(s.status.status_code is StatusCode.ERROR for s in spans)


def test_extract_without_traceparent_is_not_the_current_span() -> None:
    with tracer(__name__).start_as_current_span("current"):
        assert not trace.get_current_span(extract_context([("ce_id", b"1")])).get_span_context().is_valid


def test_without_an_endpoint_nothing_is_recorded_but_ids_still_propagate() -> None:
    scope = build_provider("test", None).get_tracer(__name__)
    caller = [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    span = scope.start_span("continued", context=extract_context(caller))
    assert not span.is_recording() and span.get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    with trace.use_span(span):
        assert inject_headers()["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    root = scope.start_span("new")
    assert not root.is_recording() and root.get_span_context().is_valid


def test_child_span_creates_nothing_under_an_unsampled_parent_and_a_child_under_a_sampled_one(
    finished: InMemorySpanExporter,
) -> None:
    off = build_provider("test", None).get_tracer(__name__)
    parent = off.start_span("record")
    with child_span(tracer(__name__), parent, "step") as step:
        assert step is parent and trace.get_current_span() is parent
    with tracer(__name__).start_as_current_span("record") as sampled, child_span(tracer(__name__), sampled, "step"):
        pass
    step_span = only(finished.get_finished_spans(), "step")
    assert step_span.parent is not None and step_span.parent.span_id == sampled.get_span_context().span_id


def test_a_zero_sample_ratio_records_no_new_trace_but_follows_a_sampled_caller() -> None:
    scope = build_provider("test", "127.0.0.1:1", 0.0).get_tracer(__name__)
    assert not scope.start_span("new").is_recording()
    caller = [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    continued = scope.start_span("continued", context=extract_context(caller))
    assert continued.is_recording()
    assert continued.get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
