"""Domain errors. Business code raises these; the gRPC interceptor maps each to one status code."""

from __future__ import annotations

import grpc


class AimeshError(Exception):
    """Base of every domain error. ``code`` is the gRPC status the API answers with."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def from_status(cls, code: grpc.StatusCode, message: str) -> AimeshError:
        """The domain error a peer's gRPC status stands for, carrying ``message``: ``InvalidArgument`` for
        INVALID_ARGUMENT, ``NotFound`` for NOT_FOUND, and so on for every code a subclass answers with;
        ``Unavailable`` for the codes no domain error has (UNKNOWN, INTERNAL, CANCELLED, UNIMPLEMENTED ...):
        all the caller can tell is that the dependency failed."""
        return _BY_STATUS.get(code, Unavailable)(message)


class InvalidArgument(AimeshError):
    """The request is malformed; the message names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(AimeshError):
    """The named entity, feature, model or alias does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(AimeshError):
    """Creating something that exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(AimeshError):
    """The system is not in a state that allows the operation (e.g. a breaking schema change)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(AimeshError):
    """The operation collided with a concurrent one and did nothing; the message names what collided.
    Retrying it is safe (it is validated again against the state the other operation left)."""

    code = grpc.StatusCode.ABORTED


class ResourceExhausted(AimeshError):
    """A size or rate limit was hit; the message names the limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(AimeshError):
    """A dependency (Kafka, Triton, the database) is down; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(AimeshError):
    """The work did not finish within the caller's deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class PermissionDenied(AimeshError):
    """The caller may not do this; the message names the tenant, the action and the resource."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(AimeshError):
    """The call carries no credentials, or credentials that do not verify; the message says which."""

    code = grpc.StatusCode.UNAUTHENTICATED


_BY_STATUS: dict[grpc.StatusCode, type[AimeshError]] = {
    error.code: error
    for error in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        PermissionDenied,
        Unauthenticated,
    )
}
