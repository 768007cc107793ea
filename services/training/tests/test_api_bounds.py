"""TrainingService refuses oversized keys and page tokens before the database sees them (INVALID_ARGUMENT
naming the field and the limit; a 1 MiB name is not a key for a SQL index, a 5,000-digit token not an int)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from aimesh.api.common.v1 import common_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.training.api import TrainingServiceApi
from aimesh.training.paging import page_of

HUGE = "m" * (1 << 20)


class Untouched:
    """Stands in for the worker, the stores and the deployer: any use fails the test."""

    def __getattr__(self, name: str) -> Any:
        def reached(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"the request reached {name}")

        return reached


def api() -> TrainingServiceApi:
    nothing = cast(Any, Untouched())
    return TrainingServiceApi(worker=nothing, runs=nothing, registry=nothing, deployer=nothing)


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("GetModelVersion", training_pb2.GetModelVersionRequest(model_name=HUGE, version=1), "model_name"),
        ("ListModelVersions", training_pb2.ListModelVersionsRequest(model_name=HUGE), "model_name"),
        ("GetAlias", training_pb2.GetAliasRequest(model_name="m", alias=HUGE), "alias"),
        ("ListAliasAudit", training_pb2.ListAliasAuditRequest(model_name="m", alias=HUGE), "alias"),
        ("ListRuns", training_pb2.ListRunsRequest(model_name=HUGE), "model_name"),
        ("GetRun", training_pb2.GetRunRequest(run_id=HUGE), "run_id"),
        ("StartRun", training_pb2.StartRunRequest(idempotency_key=HUGE), "idempotency_key"),
        ("SetAlias", training_pb2.SetAliasRequest(model_name="m", alias="a", actor=HUGE), "actor"),
        ("SetAlias", training_pb2.SetAliasRequest(model_name="m", alias="a", actor="x", reason=HUGE), "reason"),
        (
            "SetTrafficPolicy",
            training_pb2.SetTrafficPolicyRequest(policy=training_pb2.TrafficPolicy(model_name=HUGE)),
            "policy.model_name",
        ),
        (
            "SetTrafficPolicy",
            training_pb2.SetTrafficPolicyRequest(policy=training_pb2.TrafficPolicy(model_name="m", actor=HUGE)),
            "policy.actor",
        ),
        (
            "SetTrafficPolicy",
            training_pb2.SetTrafficPolicyRequest(
                policy=training_pb2.TrafficPolicy(model_name="m", actor="x", reason=HUGE)
            ),
            "policy.reason",
        ),
        ("GetTrafficPolicy", training_pb2.GetTrafficPolicyRequest(model_name=HUGE), "model_name"),
        ("ListTrafficPolicyAudit", training_pb2.ListTrafficPolicyAuditRequest(model_name=HUGE), "model_name"),
        ("Promote", training_pb2.PromoteRequest(model_name=HUGE, actor="x"), "model_name"),
        ("Promote", training_pb2.PromoteRequest(model_name="m", actor=HUGE), "actor"),
        ("Promote", training_pb2.PromoteRequest(model_name="m", actor="x", reason=HUGE), "reason"),
        ("Rollback", training_pb2.RollbackRequest(model_name=HUGE, actor="x"), "model_name"),
        ("Rollback", training_pb2.RollbackRequest(model_name="m", actor=HUGE), "actor"),
        ("Rollback", training_pb2.RollbackRequest(model_name="m", actor="x", reason=HUGE), "reason"),
    ],
)
async def test_oversized_keys_are_invalid_argument_naming_the_field(method: str, request_: Any, field: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field} is 1048576 bytes long; the limit is"):
        await getattr(api(), method)(request_, None)


def test_a_page_token_longer_than_any_issued_is_invalid_argument() -> None:
    assert page_of(common_pb2.PageRequest(page_token="9" * 18)).offset == 10**18 - 1
    with pytest.raises(InvalidArgument, match="is not a token this server issued"):
        page_of(common_pb2.PageRequest(page_token="9" * 5000))
