"""The error classifier: transient (retry forever), permanent (dead-letter now), unclassified (N attempts)."""

from __future__ import annotations

import errno

import grpc
import pytest
import sqlalchemy.exc
from aiokafka import errors as kafka_errors
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elastic_transport import ConnectionError as EsConnectionError
from elasticsearch import ApiError
from google.protobuf.message import DecodeError
from redis import exceptions as redis_errors

from aimesh.core import errors
from aimesh.core.events import PoisonEvent
from aimesh.core.failures import DEFAULT_CLASSIFIER, FailureKind

TRANSIENT, PERMANENT, UNCLASSIFIED = FailureKind.TRANSIENT, FailureKind.PERMANENT, FailureKind.UNCLASSIFIED


class _Rpc(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def es_api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(
        status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=NodeConfig("http", "h", 9200)
    )
    return ApiError(f"status {status}", meta, {})


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    "exc",
    [
        kafka_errors.KafkaConnectionError("broker down"),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.OutOfOrderSequenceNumber(),
        kafka_errors.NotLeaderForPartitionError(),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        _PgError("08006"),
        _PgError("57P03"),
        _PgError("40001"),
        ConnectionRefusedError("refused"),
        TimeoutError(),
        OSError(errno.ENOSPC, "No space left on device"),
        errors.Unavailable("Elasticsearch at http://x: 503"),
        errors.DeadlineExceeded("too slow"),
        EsConnectionError("refused"),
        redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6390"),
        redis_errors.BusyLoadingError(),
        es_api_error(429),
        es_api_error(503),
        _Rpc(grpc.StatusCode.UNAVAILABLE),
        _wrapped(RuntimeError("while writing"), ConnectionResetError("reset")),
        ExceptionGroup("parts", [ValueError("x"), ConnectionError("down")]),
    ],
    ids=repr,
)
def test_unavailable_dependencies_are_transient(exc: BaseException) -> None:
    assert DEFAULT_CLASSIFIER.classify(exc).kind is TRANSIENT


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (PoisonEvent("MISSING_FIELD", "no entity id"), "MISSING_FIELD"),
        (DecodeError("truncated"), "DECODE_ERROR"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), "MALFORMED_PAYLOAD"),
        (kafka_errors.MessageSizeTooLargeError(), "PAYLOAD_TOO_LARGE"),
        (es_api_error(413), "PAYLOAD_TOO_LARGE"),
        (errors.InvalidArgument("entity_id is empty"), "INVALID_VALUE"),
        (_wrapped(RuntimeError("dead letter"), PoisonEvent("INVALID_VALUE", "bad kind")), "INVALID_VALUE"),
    ],
    ids=repr,
)
def test_record_specific_errors_are_permanent_with_a_reason(exc: BaseException, reason: str) -> None:
    failure = DEFAULT_CLASSIFIER.classify(exc)
    assert (failure.kind, failure.reason_code) == (PERMANENT, reason)
    assert failure.message


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("bug"), KeyError("x"), ValueError("odd"), OSError(errno.ENOENT, "gone"), es_api_error(400)],
    ids=repr,
)
def test_anything_else_is_unclassified_and_names_the_error(exc: BaseException) -> None:
    failure = DEFAULT_CLASSIFIER.classify(exc)
    assert failure.kind is UNCLASSIFIED and type(exc).__name__ in failure.message


def test_services_can_register_their_own_types_ahead_of_the_builtin_rules() -> None:
    class MappingRefused(Exception):
        pass

    class StoreDown(ValueError):
        pass

    classifier = DEFAULT_CLASSIFIER.extended(transient=[StoreDown], permanent={MappingRefused: "DOCUMENT_REJECTED"})
    assert classifier.classify(StoreDown("redis")).kind is TRANSIENT
    refused = classifier.classify(MappingRefused("field x"))
    assert (refused.kind, refused.reason_code) == (PERMANENT, "DOCUMENT_REJECTED")
    assert DEFAULT_CLASSIFIER.classify(StoreDown("redis")).kind is UNCLASSIFIED, "the default is unchanged"


def test_messages_are_bounded() -> None:
    assert len(DEFAULT_CLASSIFIER.classify(RuntimeError("x" * 100_000)).message) <= 2000
