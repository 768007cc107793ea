"""gRPC server builder (``grpc.aio``): health, reflection, one error-mapping interceptor, limits, TLS.

The interceptor is the only place where domain errors become status codes:
``AimeshError`` subclasses map to their ``code``; a handler that outlives the caller's deadline gets
``DEADLINE_EXCEEDED``; anything else is ``INTERNAL`` with the trace id, logged with its traceback.
It also continues the caller's W3C trace context from the request metadata and records metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from aimesh.core import metrics
from aimesh.core.errors import AimeshError
from aimesh.core.settings import ServiceSettings
from aimesh.core.tracing import extract_context

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("aimesh.core.grpc")

Registrar = Callable[[grpc.aio.Server], None]


def _time_left(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e9 else max(remaining, 0.0)


async def _fail(context: grpc.aio.ServicerContext, method: str, exc: BaseException) -> None:
    """Abort the call with the status that ``exc`` maps to (never returns)."""
    if isinstance(exc, AimeshError):
        code, message = exc.code, exc.message
    elif isinstance(exc, TimeoutError):
        code, message = grpc.StatusCode.DEADLINE_EXCEEDED, f"{method} did not finish within the deadline"
    else:
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        log.error("unhandled error in %s", method, exc_info=exc)
        code, message = grpc.StatusCode.INTERNAL, f"internal error (trace id {trace_id})"
    metrics.GRPC_REQUESTS.labels(method, code.name).inc()
    await context.abort(code, message)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps errors to status codes, enforces deadlines, traces and measures every RPC."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        method = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    @staticmethod
    def _wrap_unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            parent = extract_context(context.invocation_metadata() or ())
            started = time.perf_counter()
            with _tracer.start_as_current_span(method, context=parent, kind=trace.SpanKind.SERVER):
                try:
                    response = await asyncio.wait_for(behavior(request, context), timeout=_time_left(context))
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _fail(context, method, exc)
                    raise  # unreachable: abort raises
                finally:
                    metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)
            metrics.GRPC_REQUESTS.labels(method, "OK").inc()
            return response

        return wrapper

    @staticmethod
    def _wrap_stream(method: str, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            parent = extract_context(context.invocation_metadata() or ())
            with _tracer.start_as_current_span(method, context=parent, kind=trace.SpanKind.SERVER):
                try:
                    async for item in behavior(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _fail(context, method, exc)
            metrics.GRPC_REQUESTS.labels(method, "OK").inc()

        return wrapper


class GrpcServer:
    """A ``grpc.aio`` server with health and reflection, bound per the service settings.

    ``serve()`` starts it and blocks until ``stop()``; ``stop()`` marks health NOT_SERVING, then lets
    in-flight calls finish within the shutdown grace period.
    """

    def __init__(
        self, settings: ServiceSettings, registrars: Sequence[Registrar], service_names: Sequence[str]
    ) -> None:
        self.settings = settings
        self.service_names = list(service_names)
        self.serving_at_start = True
        """False when something else (the runtime's readiness loop) decides when to report SERVING."""
        limit = settings.grpc_max_message_bytes
        self.server = grpc.aio.server(
            interceptors=[ErrorMappingInterceptor()],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        for register in registrars:
            register(self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server,
        )
        address = f"{settings.grpc_host}:{settings.grpc_port}"
        credentials = server_credentials(settings)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)

    async def _set_status(self, status: int) -> None:
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def set_serving(self, serving: bool) -> None:
        """Publish readiness through grpc.health.v1 (what Kubernetes' gRPC readiness probe reads)."""
        await self._set_status(
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )

    async def serve(self) -> None:
        await self.server.start()
        if self.serving_at_start:
            await self._set_status(health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC listening", extra={"port": self.port, "services": self.service_names})
        await self.server.wait_for_termination()

    async def stop(self) -> None:
        await self._set_status(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(self.settings.shutdown_grace_seconds)


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; mTLS (client certificates required) when a client CA is too."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    if settings.tls_client_ca_file is None:
        return grpc.ssl_server_credentials([pair])
    return grpc.ssl_server_credentials(
        [pair], root_certificates=settings.tls_client_ca_file.read_bytes(), require_client_auth=True
    )
