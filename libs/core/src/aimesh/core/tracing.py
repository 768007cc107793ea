"""OpenTelemetry tracing: provider set-up and W3C trace-context propagation over gRPC and Kafka.

One trace per decision: a span continues the W3C ``traceparent`` it was given (gRPC metadata, Kafka
headers), so an upstream system that publishes an event and asks for its score under one trace sees
ingest, the feature update, ``Score``, the feature lookup, Triton and monitor's indexing in that trace.

- ``configure_tracing`` installs the process's provider, once, from the service settings: spans are
  exported over OTLP/gRPC (batched) when an endpoint is set, sampled ``ParentBased(TraceIdRatioBased)``
  (a continued trace keeps its caller's decision). With no endpoint tracing is off: nothing is sampled
  or recorded, yet every span still has its ids, so trace ids reach logs, events, error messages and
  the next service's ``traceparent`` (flagged not sampled).
- ``record_spans`` opens one CONSUMER span per consumed record of a batch, each continuing the
  record's own context (a new trace when it has none); ``child_span`` runs a step of the handler's work
  on one record as that span's child (or, when the record is not sampled, just in its context), so
  what it produces carries the record's trace on.
- ``inject_headers`` / ``extract_context`` carry the context in Kafka headers and gRPC metadata;
  ``aimesh.core.channels`` injects it into every client call (with a CLIENT span per unary call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, use_span

KafkaHeaders = Sequence[tuple[str, bytes]]
TRACE_HEADERS = ("traceparent", "tracestate")
__all__ = [
    "build_provider",
    "child_span",
    "configure_tracing",
    "extract_context",
    "inject_headers",
    "record_spans",
    "tracer",
    "use_span",
]


class ConsumedRecord(Protocol):
    """What ``record_spans`` reads of a consumed record (``aimesh.core.events.Event`` is one)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def headers(self) -> KafkaHeaders: ...


def configure_tracing(service_name: str, otlp_endpoint: str | None, sample_ratio: float = 1.0) -> TracerProvider:
    """Install ``build_provider(...)`` as the process's global TracerProvider and return it.

    The caller shuts the provider down at exit (flushing what is batched)."""
    provider = build_provider(service_name, otlp_endpoint, sample_ratio)
    trace.set_tracer_provider(provider)
    return provider


def build_provider(service_name: str, otlp_endpoint: str | None, sample_ratio: float = 1.0) -> TracerProvider:
    """A TracerProvider for ``service_name``: with an endpoint it samples ``sample_ratio`` (0..1) of new
    traces, follows the caller's decision for continued ones and exports over OTLP/gRPC (batched);
    without one it samples nothing (see the module doc)."""
    sampler: Sampler = ParentBased(TraceIdRatioBased(sample_ratio)) if otlp_endpoint else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    return provider


def tracer(name: str) -> trace.Tracer:
    """The tracer of instrumentation scope ``name`` (a module name), from the global provider."""
    return trace.get_tracer(name)


def inject_headers(ctx: context.Context | None = None) -> dict[str, str]:
    """The W3C ``traceparent``/``tracestate`` entries for ``ctx`` (default: the current context).

    Empty, without running the propagators, when no span is active (the hot path of batch producers).
    """
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier


def extract_context(pairs: Iterable[tuple[str, str | bytes]]) -> context.Context:
    """A context from Kafka headers or gRPC metadata pairs (bytes values are decoded as UTF-8).

    Without a valid ``traceparent`` it is the empty context (a span started in it is a new trace's root,
    not a child of whatever span happens to be current)."""
    carrier: dict[str, str] = {}
    for key, value in pairs:
        k = key.lower()
        if k in TRACE_HEADERS:
            carrier[k] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return propagate.extract(carrier, context=context.Context())


@contextlib.contextmanager
def child_span(scope: trace.Tracer, parent: Span, name: str, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """Run the block in a span ``name`` that is ``parent``'s child (current meanwhile); when ``parent`` is
    not recording, in ``parent``'s context alone, creating nothing (the hot path of unsampled records)."""
    with use_span(parent):
        if not parent.is_recording():
            yield parent
            return
        with scope.start_as_current_span(name, kind=kind) as span:
            yield span


@contextlib.contextmanager
def record_spans(scope: trace.Tracer, name: str, records: Sequence[ConsumedRecord]) -> Iterator[list[Span]]:
    """One CONSUMER span ``name`` per record of ``records`` (same order), each the child of the context in
    the record's headers, with the messaging attributes of its position. All end when the block exits;
    an exception leaving the block marks each of them as failed (and propagates)."""
    spans = [
        scope.start_span(
            name,
            context=extract_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
            },
        )
        for record in records
    ]
    try:
        yield spans
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()
