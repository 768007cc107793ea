"""Domain errors from a peer's gRPC status: each code to its error, the rest UNAVAILABLE."""

from __future__ import annotations

import grpc
import pytest

from aimesh.core import errors
from aimesh.core.errors import AimeshError


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.ABORTED, errors.Aborted),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
    ],
)
def test_each_code_maps_to_its_error_and_back(code: grpc.StatusCode, expected: type[AimeshError]) -> None:
    error = AimeshError.from_status(code, "peer: detail")
    assert type(error) is expected
    assert error.code == code
    assert error.message == "peer: detail" and str(error) == "peer: detail"


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNIMPLEMENTED],
)
def test_codes_without_a_domain_error_are_unavailable(code: grpc.StatusCode) -> None:
    assert type(AimeshError.from_status(code, "x")) is errors.Unavailable


def test_subclass_call_gives_the_same_mapping() -> None:
    assert type(errors.NotFound.from_status(grpc.StatusCode.INVALID_ARGUMENT, "x")) is errors.InvalidArgument
