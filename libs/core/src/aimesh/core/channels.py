"""Client channels to other services and to Triton: one place for their options and credentials.

Every long-lived client channel of the mesh (the feature service's client, inference's Triton client)
is built from ``channel_options()``, so they all recover the same way when their peer restarts:

- **Reconnect within about a second.** gRPC retries a lost connection with exponential backoff; its
  defaults (1 s growing to 120 s) left clients failing for many seconds after the peer was back. Here
  the backoff starts at ``INITIAL_RECONNECT_BACKOFF_MS`` and never exceeds ``MAX_RECONNECT_BACKOFF_MS``
  (1 s), so a refused connection is retried at least once a second (gRPC adds ±20 % jitter).
- **Bounded connect attempts.** ``grpc.min_reconnect_backoff_ms`` is gRPC's minimum connect timeout
  (default 20 s): an attempt against a peer that does not answer at all (a vanished pod IP) is given up
  after ``MIN_CONNECT_TIMEOUT_MS`` and the next one starts, instead of hanging 20 s.
- **Dead peers found by keepalive.** While calls are in flight the client pings every
  ``KEEPALIVE_TIME_MS`` and drops a connection whose ping is not answered within
  ``KEEPALIVE_TIMEOUT_MS``. No pings on idle channels: gRPC servers (and Triton) refuse frequent pings
  without calls by default (GOAWAY "too_many_pings").

**Trace context.** Every call carries the current W3C ``traceparent`` in its metadata
(``aimesh.core.tracing``), and each unary call runs in a CLIENT span named after its method, so the
callee's server span continues the caller's trace.

Calls do not wait for a connection (no ``wait_for_ready``): while the peer is down they fail at once
with UNAVAILABLE, and the first call after the reconnect succeeds.

**Credentials.** With a ``token_file``, every call carries ``authorization: Bearer <token>`` (the
servers' ``aimesh.core.auth``); the file is re-read when it changes, so a rotated token is picked up
without a new channel. Services pass their ``auth_token_file`` setting; people's tools (the CLI, the
examples, the tests, the benchmarks) use ``open_caller_channel``, which takes the token file from
``$AIMESH_AUTH_TOKEN_FILE``. The token travels in clear text unless the channel is TLS (or a mesh
sidecar encrypts it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.trace import SpanKind, Status, StatusCode

from aimesh.core.tracing import inject_headers, tracer

TOKEN_FILE_ENV = "AIMESH_AUTH_TOKEN_FILE"  # noqa: S105 (the name of a variable)

INITIAL_RECONNECT_BACKOFF_MS = 200
MAX_RECONNECT_BACKOFF_MS = 1000
MIN_CONNECT_TIMEOUT_MS = 2000
KEEPALIVE_TIME_MS = 20_000
KEEPALIVE_TIMEOUT_MS = 5_000
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

ChannelOptions = list[tuple[str, int]]


def channel_options(*, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> ChannelOptions:
    """The options of every client channel (see the module doc); messages up to ``max_message_bytes`` each way."""
    return [
        ("grpc.initial_reconnect_backoff_ms", INITIAL_RECONNECT_BACKOFF_MS),
        ("grpc.min_reconnect_backoff_ms", MIN_CONNECT_TIMEOUT_MS),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


class BearerToken:
    """The token in ``path`` (surrounding whitespace stripped), re-read when the file's mtime or size
    changes. Raises ``OSError`` when the file cannot be read on first use, ``ValueError`` when empty.
    Later, a file that cannot be read or is empty (caught mid-rewrite) keeps the last token in use and
    is read again at the next call, so a rotation never fails a call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._token = ""
        self.value()

    def value(self) -> str:
        with self._lock:
            try:
                stat = os.stat(self.path)
                stamp = (stat.st_mtime_ns, stat.st_size)
                if stamp == self._stamp:
                    return self._token
                token = self.path.read_text(encoding="utf-8").strip()
                if not token:
                    raise ValueError(f"token file {self.path} is empty")
            except (OSError, ValueError):
                if not self._token:
                    raise
                return self._token
            self._token, self._stamp = token, stamp
            return self._token


class _Bearer:
    """Adds ``authorization: Bearer <token>`` to the metadata of every call of its kind. grpc.aio files
    an interceptor under the first call kind it implements only, hence one subclass per kind."""

    def __init__(self, token: BearerToken) -> None:
        self.token = token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add("authorization", f"Bearer {self.token.value()}")
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def _call(self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _BearerUnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    intercept_unary_unary = _Bearer._call


class _BearerUnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    intercept_unary_stream = _Bearer._call


class _BearerStreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    intercept_stream_unary = _Bearer._call


class _BearerStreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    intercept_stream_stream = _Bearer._call


_tracer = tracer(__name__)


def _with_trace_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """``details`` with the current context's ``traceparent``/``tracestate`` added to its metadata."""
    entries = inject_headers()
    if not entries:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in entries.items():
        metadata.add(key, value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


def _method_name(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


class _TracedUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Runs each unary call in a CLIENT span (its status code recorded) and propagates the span's context."""

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        method = _method_name(details)
        with _tracer.start_as_current_span(
            method, kind=SpanKind.CLIENT, attributes={"rpc.system": "grpc", "rpc.method": method}
        ) as span:
            call = await continuation(_with_trace_context(details), request)
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
                span.set_status(Status(StatusCode.ERROR, exc.code().name))
            else:
                span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
            return call


class _TracedStream:
    """Propagates the current context on a streaming call (no span of its own: the caller's covers it)."""

    async def _call(self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(_with_trace_context(details), request)


class _TracedUnaryStream(_TracedStream, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    intercept_unary_stream = _TracedStream._call


class _TracedStreamUnary(_TracedStream, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    intercept_stream_unary = _TracedStream._call


class _TracedStreamStream(_TracedStream, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    intercept_stream_stream = _TracedStream._call


def caller_token_file() -> Path | None:
    """``$AIMESH_AUTH_TOKEN_FILE`` as a path, None when unset or empty (read when called, never at import)."""
    value = os.environ.get(TOKEN_FILE_ENV)
    return Path(value) if value else None


def open_channel(
    address: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, token_file: Path | None = None
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel to ``address`` (``host:port``) with ``channel_options``; connects lazily.
    Every call carries the current trace context; with ``token_file`` also its bearer token (see the
    module doc), the file must then be readable now (``OSError``) and not empty (``ValueError``).

    Must be called on the event loop that will use it; the caller closes it (``await channel.close()``).
    """
    interceptors: list[Any] = [_TracedUnaryUnary(), _TracedUnaryStream(), _TracedStreamUnary(), _TracedStreamStream()]
    if token_file is not None:
        token = BearerToken(token_file)
        kinds = (_BearerUnaryUnary, _BearerUnaryStream, _BearerStreamUnary, _BearerStreamStream)
        interceptors += [kind(token) for kind in kinds]
    return grpc.aio.insecure_channel(
        address, options=channel_options(max_message_bytes=max_message_bytes), interceptors=interceptors
    )


def open_caller_channel(address: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> grpc.aio.Channel:
    """``open_channel`` with the token file of ``$AIMESH_AUTH_TOKEN_FILE`` (none when unset): the channel
    of a person's tool (CLI commands, examples, tests, benchmarks)."""
    return open_channel(address, max_message_bytes=max_message_bytes, token_file=caller_token_file())
