"""gRPC server builder (``grpc.aio``): health, reflection, one error-mapping interceptor, limits, TLS, auth.

The interceptor is the only place where domain errors become status codes:
``AimeshError`` subclasses map to their ``code``; a handler that outlives the caller's deadline gets
``DEADLINE_EXCEEDED``; anything else is ``INTERNAL`` with the trace id, logged with its traceback.
A message longer than ``MAX_DETAILS_BYTES`` (as sent: non-ASCII percent-encoded) is cut, with a note of
how much was cut: the status details travel in a header, and one over gRPC's 8 KiB metadata limit (an
error echoing a 10 KB request field) reached the caller as RESOURCE_EXHAUSTED "Stream removed".
It also continues the caller's W3C trace context from the request metadata and records metrics.

For every method except ``grpc.health.v1`` and reflection it also decodes the request itself, in this
order: the caller is authenticated (``aimesh.core.auth``, when an ``Authorizer`` is given:
``UNAUTHENTICATED``), the request bytes are parsed (bytes that are not a valid message:
``INVALID_ARGUMENT`` "request is not a valid <message type>: ...", logged as a WARNING without a stack
trace at most once a minute per method), then the method's access rule is checked against the
caller's tenant (``PERMISSION_DENIED``), then the request's well-known types and enum numbers are checked
(``aimesh.core.validation.check_message``: an invalid Timestamp or Duration, or an enum number its enum
does not define, anywhere in the request is ``INVALID_ARGUMENT`` naming the field). The handler runs with
the caller as ``current_principal()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from aimesh.core import metrics
from aimesh.core.auth import AccessRule, Authorizer, Principal, bind_principal, build_authorizer, reset_principal
from aimesh.core.errors import AimeshError, InvalidArgument
from aimesh.core.failures import ErrorClassifier, FailureKind
from aimesh.core.settings import ServiceSettings
from aimesh.core.tracing import extract_context
from aimesh.core.validation import check_message

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("aimesh.core.grpc")

Registrar = Callable[[grpc.aio.Server], None]
Deserializer = Callable[[bytes], Any]
OPEN_METHOD_PREFIXES = ("/grpc.health", "/grpc.reflection")
"""Methods every caller may use without credentials (probes, tooling)."""
BAD_REQUEST_LOG_INTERVAL_SECONDS = 60.0
MAX_DETAILS_BYTES = 2048
"""The longest status message sent (bytes in the ``grpc-message`` header, non-ASCII counted encoded)."""


def bounded_details(message: str, limit: int = MAX_DETAILS_BYTES) -> str:
    """``message``, cut to at most ``limit`` header bytes (printable ASCII 1, anything else 3 per UTF-8 byte)
    with "... (<n> more characters)" appended when cut."""
    if len(message) * 12 <= limit:
        return message
    size = 0
    for i, ch in enumerate(message):
        size += 1 if " " <= ch <= "~" else 3 * len(ch.encode("utf-8", "surrogatepass"))
        if size > limit:
            return f"{message[:i]}... ({len(message) - i} more characters)"
    return message


def _time_left(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e9 else max(remaining, 0.0)


async def _fail(context: grpc.aio.ServicerContext, method: str, exc: BaseException) -> None:
    """Abort the call with the status that ``exc`` maps to (never returns)."""
    if isinstance(exc, AimeshError):
        code, message = exc.code, exc.message
    elif isinstance(exc, TimeoutError):
        code, message = grpc.StatusCode.DEADLINE_EXCEEDED, f"{method} did not finish within the deadline"
    elif (failure := _CLASSIFIER.classify(exc)).kind is FailureKind.TRANSIENT:
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        _UNAVAILABLE_WARNING.warn(method, "%s: a dependency is unavailable: %s", method, failure.message)
        code = grpc.StatusCode.UNAVAILABLE
        message = f"a dependency of {method} is unavailable ({type(exc).__name__}); retry (trace id {trace_id})"
    else:
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        log.error("unhandled error in %s", method, exc_info=exc)
        code, message = grpc.StatusCode.INTERNAL, f"internal error (trace id {trace_id})"
    metrics.GRPC_REQUESTS.labels(method, code.name).inc()
    await context.abort(code, bounded_details(message))


class _RateLimitedWarning:
    """Logs at most one WARNING per key per ``interval`` seconds, counting the ones it held back."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        log.warning(message + " (%d more since the last warning)", *args, held)


_CLASSIFIER = ErrorClassifier()
_UNAVAILABLE_WARNING = _RateLimitedWarning(10.0)
"""A handler error the classifier calls transient (database, Redis, Elasticsearch, broker or a peer
unavailable) is UNAVAILABLE, logged as one rate-limited WARNING per method without a stack trace."""


def _message_name(deserializer: Deserializer | None) -> str:
    message_class = getattr(deserializer, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "message"))


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps errors to status codes, enforces deadlines, decodes and authorises requests, traces and
    measures every RPC (see the module doc). ``authorizer`` None: every caller may call every method."""

    def __init__(self, authorizer: Authorizer | None = None) -> None:
        self.authorizer = authorizer
        self._bad_requests = _RateLimitedWarning(BAD_REQUEST_LOG_INTERVAL_SECONDS)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        method = details.method
        decode = self._decoder(method, handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, decode, handler.unary_unary),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, decode, handler.unary_stream),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, None, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, None, handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _decoder(self, method: str, deserializer: Deserializer | None) -> Callable[[Any], Any]:
        """The request deserializer, raising ``InvalidArgument`` for bytes that are not a valid message."""
        name = _message_name(deserializer)

        def decode(raw: Any) -> Any:
            if deserializer is None or not isinstance(raw, bytes):
                return raw
            try:
                return deserializer(raw)
            except Exception as exc:
                self._bad_requests.warn(method, "undecodable request to %s: %s", method, exc)
                raise InvalidArgument(f"request is not a valid {name}: {exc}") from None

        return decode

    def _admit(
        self, method: str, decode: Callable[[Any], Any] | None, raw: Any, context: grpc.aio.ServicerContext
    ) -> tuple[Any, Principal | None]:
        """Authenticate, decode, authorise and check one request (see the module doc); raises domain errors."""
        principal = None
        if self.authorizer is not None:
            principal = self.authorizer.authenticate(context.invocation_metadata() or (), context.auth_context())
        request = decode(raw) if decode is not None else raw
        if self.authorizer is not None and principal is not None:
            self.authorizer.authorize(principal, method, request)
        if isinstance(request, Message):
            check_message(request)
        return request, principal

    def _wrap_unary(
        self, method: str, decode: Callable[[Any], Any] | None, behavior: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapper(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            parent = extract_context(context.invocation_metadata() or ())
            started = time.perf_counter()
            with _tracer.start_as_current_span(method, context=parent, kind=trace.SpanKind.SERVER):
                bound = None
                try:
                    request, principal = self._admit(method, decode, raw, context)
                    bound = bind_principal(principal)
                    response = await asyncio.wait_for(behavior(request, context), timeout=_time_left(context))
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _fail(context, method, exc)
                    raise  # unreachable: abort raises
                finally:
                    if bound is not None:
                        reset_principal(bound)
                    metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)
            metrics.GRPC_REQUESTS.labels(method, "OK").inc()
            return response

        return wrapper

    def _wrap_stream(
        self, method: str, decode: Callable[[Any], Any] | None, behavior: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapper(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            parent = extract_context(context.invocation_metadata() or ())
            with _tracer.start_as_current_span(method, context=parent, kind=trace.SpanKind.SERVER):
                bound = None
                try:
                    request, principal = self._admit(method, decode, raw, context)
                    bound = bind_principal(principal)
                    async for item in behavior(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _fail(context, method, exc)
                finally:
                    if bound is not None:
                        reset_principal(bound)
            metrics.GRPC_REQUESTS.labels(method, "OK").inc()

        return wrapper


class GrpcServer:
    """A ``grpc.aio`` server with health and reflection, bound per the service settings.

    ``serve()`` starts it and blocks until ``stop()``; ``stop()`` marks health NOT_SERVING, then lets
    in-flight calls finish within the shutdown grace period.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        registrars: Sequence[Registrar],
        service_names: Sequence[str],
        *,
        access: Mapping[str, AccessRule] | None = None,
    ) -> None:
        """``access``: the services' method -> ``AccessRule`` table (``aimesh.core.auth``), enforced when
        ``settings.auth_enabled``; a method missing from it is denied. Raises ``ValueError`` for an
        auth configuration that cannot work (see ``build_authorizer``)."""
        self.settings = settings
        self.service_names = list(service_names)
        self.serving_at_start = True
        """False when something else (the runtime's readiness loop) decides when to report SERVING."""
        limit = settings.grpc_max_message_bytes
        self.server = grpc.aio.server(
            interceptors=[ErrorMappingInterceptor(build_authorizer(settings, access or {}))],
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
