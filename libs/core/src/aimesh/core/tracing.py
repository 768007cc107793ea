"""OpenTelemetry tracing: provider set-up and W3C trace-context propagation over gRPC and Kafka.

With no OTLP endpoint configured, spans are created (so ids reach logs and events) but not exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

KafkaHeaders = Sequence[tuple[str, bytes]]


def configure_tracing(service_name: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install a global TracerProvider for ``service_name``; export over OTLP/gRPC when an endpoint is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


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
    """A context from Kafka headers or gRPC metadata pairs (bytes values are decoded as UTF-8)."""
    carrier: dict[str, str] = {}
    for key, value in pairs:
        k = key.lower()
        if k in ("traceparent", "tracestate"):
            carrier[k] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return propagate.extract(carrier)
