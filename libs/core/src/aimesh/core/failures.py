"""What a consumer does with a handler's exception: the one place errors are classified.

``ErrorClassifier.classify(exc)`` answers a ``Failure`` of one of three kinds:

- ``TRANSIENT``: a dependency is unavailable (the broker, the database, Redis, Elasticsearch, a gRPC
  peer, a full disk). The record is fine; the consumer rewinds and retries it with backoff for as long as it
  takes and never skips it.
- ``PERMANENT``: this record can never be handled (``PoisonEvent``, a protobuf decode error, invalid
  UTF-8 or JSON, a record or document too large, an argument the peer refuses). The consumer
  dead-letters it with ``Failure.reason_code`` and moves on.
- ``UNCLASSIFIED``: anything else (a bug, an unexpected state). The consumer retries the record up to
  its ``max_attempts`` and then dead-letters it as ``RETRIES_EXHAUSTED`` with the last error.

The exception itself is looked at first, then what it wraps (``__cause__``, SQLAlchemy's ``orig``),
up to ``MAX_CAUSE_DEPTH`` levels; the first kind found wins, so ``Unavailable(...) from ApiError``
is transient whatever the cause. An ``ExceptionGroup`` is transient when any member is, permanent
when all are (the first member's reason), unclassified otherwise. Services add their own types with
``DEFAULT_CLASSIFIER.extended(transient=..., permanent=...)`` and pass the result to ``EventConsumer``.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import grpc
import sqlalchemy.exc
from aiokafka import errors as kafka_errors
from google.protobuf.message import DecodeError

from aimesh.core import errors
from aimesh.core.events import PoisonEvent

MAX_CAUSE_DEPTH = 8
MAX_MESSAGE_CHARS = 2000
"""Longest error text a ``Failure`` carries (a dead letter's message is at most 4 KiB)."""
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
"""Reason code of a record dead-lettered because it still failed after the consumer's last attempt."""

_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EROFS,
        errno.EAGAIN,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)
_TRANSIENT_GRPC = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
_TRANSIENT_HTTP = frozenset({408, 429, 502, 503, 504})
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P", "40001", "40P01", "HV")
"""PostgreSQL SQLSTATEs of an unavailable or overloaded server: connection exceptions, insufficient
resources, operator intervention (shutdown, cannot connect now), serialization failure, deadlock."""


class FailureKind(StrEnum):
    """How a consumer treats a failed record (see the module doc)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified handler error: ``reason_code`` is set for ``PERMANENT`` only; ``message`` names the error."""

    kind: FailureKind
    message: str
    reason_code: str = ""


Rule = Callable[[BaseException], Failure | None]
"""Classifies one exception (not its causes), or answers None when it does not know it."""


def describe(exc: BaseException) -> str:
    """``<type name>: <text>``, cut to ``MAX_MESSAGE_CHARS``."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _transient(exc: BaseException) -> Failure:
    return Failure(FailureKind.TRANSIENT, describe(exc))


def _permanent(exc: BaseException, reason_code: str) -> Failure:
    return Failure(FailureKind.PERMANENT, describe(exc), reason_code)


def _poison(exc: BaseException) -> Failure | None:
    if isinstance(exc, PoisonEvent):
        return Failure(FailureKind.PERMANENT, exc.message[:MAX_MESSAGE_CHARS], exc.reason_code)
    return None


def _domain(exc: BaseException) -> Failure | None:
    if isinstance(exc, errors.Unavailable | errors.DeadlineExceeded | errors.Aborted):
        return _transient(exc)
    if isinstance(exc, errors.InvalidArgument):
        return _permanent(exc, "INVALID_VALUE")
    return None


def _decoding(exc: BaseException) -> Failure | None:
    if isinstance(exc, DecodeError):
        return _permanent(exc, "DECODE_ERROR")
    if isinstance(exc, UnicodeDecodeError | json.JSONDecodeError):
        return _permanent(exc, "MALFORMED_PAYLOAD")
    return None


def _kafka(exc: BaseException) -> Failure | None:
    if isinstance(exc, kafka_errors.MessageSizeTooLargeError | kafka_errors.RecordTooLargeError):
        return _permanent(exc, "PAYLOAD_TOO_LARGE")
    if isinstance(exc, kafka_errors.KafkaError):
        return _transient(exc)  # the broker's state (down, fenced, rebalancing, unauthorised), not the record's
    return None


def _sqlstate(exc: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _database(exc: BaseException) -> Failure | None:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return _transient(exc)
    if isinstance(
        exc,
        sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.DisconnectionError
        | sqlalchemy.exc.TimeoutError,
    ):
        return _transient(exc)
    if isinstance(exc, sqlalchemy.exc.DataError):
        return _permanent(exc, "INVALID_VALUE")
    state = _sqlstate(exc)
    if state is not None and state.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
        return _transient(exc)
    return None


def _rpc(exc: BaseException) -> Failure | None:
    if not isinstance(exc, grpc.RpcError):
        return None
    code = getattr(exc, "code", None)
    status = code() if callable(code) else None
    if status in _TRANSIENT_GRPC:
        return _transient(exc)
    if status == grpc.StatusCode.INVALID_ARGUMENT:
        return _permanent(exc, "INVALID_VALUE")
    return None


def _http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "meta", None), "status", None)
    return status if isinstance(status, int) else None


def _elasticsearch(exc: BaseException) -> Failure | None:
    try:
        from elastic_transport import ConnectionError as EsConnectionError
        from elastic_transport import ConnectionTimeout
    except ImportError:  # the service does not talk to Elasticsearch
        return None
    if isinstance(exc, EsConnectionError | ConnectionTimeout):
        return _transient(exc)
    return None


def _redis(exc: BaseException) -> Failure | None:
    try:
        from redis import exceptions as redis_errors
    except ImportError:  # the service does not talk to Redis
        return None
    unavailable = (
        redis_errors.ConnectionError,  # BusyLoadingError included
        redis_errors.TimeoutError,
        redis_errors.TryAgainError,
        redis_errors.ClusterDownError,
        redis_errors.MasterDownError,
        redis_errors.ReadOnlyError,
    )
    return _transient(exc) if isinstance(exc, unavailable) else None


def _http(exc: BaseException) -> Failure | None:
    status = _http_status(exc)
    if status in _TRANSIENT_HTTP:
        return _transient(exc)
    if status == 413:
        return _permanent(exc, "PAYLOAD_TOO_LARGE")
    return None


def _os(exc: BaseException) -> Failure | None:
    if isinstance(exc, ConnectionError | TimeoutError):
        return _transient(exc)
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return _transient(exc)
    return None


BUILTIN_RULES: tuple[Rule, ...] = (
    _poison,
    _domain,
    _decoding,
    _kafka,
    _database,
    _rpc,
    _elasticsearch,
    _redis,
    _http,
    _os,
)
"""The rules of ``DEFAULT_CLASSIFIER``, in the order they are asked."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    for _ in range(MAX_CAUSE_DEPTH):
        if current is None or id(current) in seen:
            return
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = current.__cause__ or (orig if isinstance(orig, BaseException) else None)


class ErrorClassifier:
    """Classifies handler errors (see the module doc); immutable, cheap to call per failure."""

    def __init__(self, rules: Sequence[Rule] = BUILTIN_RULES) -> None:
        self._rules = tuple(rules)

    def extended(
        self,
        *,
        transient: Iterable[type[BaseException]] = (),
        permanent: Mapping[type[BaseException], str] | None = None,
        rules: Sequence[Rule] = (),
    ) -> ErrorClassifier:
        """A classifier that asks ``rules``, then the ``permanent`` types (exception type -> reason code),
        then the ``transient`` types, before this one's rules."""
        permanent_types = dict(permanent or {})
        transient_types = tuple(transient)

        def registered(exc: BaseException) -> Failure | None:
            for kind, code in permanent_types.items():
                if isinstance(exc, kind):
                    return _permanent(exc, code)
            if transient_types and isinstance(exc, transient_types):
                return _transient(exc)
            return None

        return ErrorClassifier((*rules, registered, *self._rules))

    def classify(self, exc: BaseException) -> Failure:
        """The failure ``exc`` stands for; ``UNCLASSIFIED`` when no rule knows it or any of its causes."""
        if isinstance(exc, BaseExceptionGroup):
            return self._classify_group(exc)
        for link in _causes(exc):
            for rule in self._rules:
                failure = rule(link)
                if failure is not None:
                    if link is exc:
                        return failure
                    message = f"{describe(exc)}; caused by {failure.message}"[:MAX_MESSAGE_CHARS]
                    return Failure(failure.kind, message, failure.reason_code)
        return Failure(FailureKind.UNCLASSIFIED, describe(exc))

    def _classify_group(self, group: BaseExceptionGroup[BaseException]) -> Failure:
        members = [self.classify(e) for e in group.exceptions]
        if any(m.kind is FailureKind.TRANSIENT for m in members):
            return Failure(FailureKind.TRANSIENT, describe(group))
        if members and all(m.kind is FailureKind.PERMANENT for m in members):
            return Failure(FailureKind.PERMANENT, members[0].message, members[0].reason_code)
        return Failure(FailureKind.UNCLASSIFIED, describe(group))


DEFAULT_CLASSIFIER = ErrorClassifier()
"""The built-in rules only; ``EventConsumer``'s default."""
