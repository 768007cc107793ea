"""Operator calls on a running training service's traffic policies (``aimesh model ...``).

Each function opens a caller channel to the gRPC address ``target`` (the token of
``$AIMESH_AUTH_TOKEN_FILE``) and raises ``grpc.aio.AioRpcError`` with the service's status.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from aimesh.api.common.v1 import common_pb2
from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core.channels import open_caller_channel
from aimesh.training.traffic_policy import fallback_of

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class SplitChange:
    """What to change in a policy; None keeps the current value. ``clear_fallback`` drops the fallback
    (``fallback`` must then be None)."""

    canary_version: int | None = None
    canary_weight: float | None = None
    shadow_version: int | None = None
    shadow_share: float | None = None
    fallback: training_pb2.Fallback | None = None
    clear_fallback: bool = False


def _pair(version: int | None, share: float | None, current_version: int, current_share: float) -> tuple[int, float]:
    """A (version, share) after a change: an option not given keeps the current value, except that the
    share of a version set to 0 (none) becomes 0 unless given."""
    new_version = current_version if version is None else version
    if share is not None:
        return new_version, share
    return new_version, 0.0 if new_version == 0 else current_share


def changed_policy(
    current: training_pb2.TrafficPolicy, change: SplitChange, *, actor: str, reason: str
) -> training_pb2.TrafficPolicy:
    """``current`` with ``change`` applied, as a SetTrafficPolicy request's policy."""
    canary = _pair(change.canary_version, change.canary_weight, current.canary_version, current.canary_weight)
    shadow = _pair(change.shadow_version, change.shadow_share, current.shadow_version, current.shadow_share)
    fallback = None if change.clear_fallback else change.fallback or fallback_of(current)
    return training_pb2.TrafficPolicy(
        model_name=current.model_name,
        canary_version=canary[0],
        canary_weight=canary[1],
        shadow_version=shadow[0],
        shadow_share=shadow[1],
        fallback=fallback,
        actor=actor,
        reason=reason,
    )


async def set_traffic(
    target: str, model_name: str, change: SplitChange, *, actor: str, reason: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> tuple[training_pb2.TrafficPolicy, bool]:
    """Apply ``change`` to the model's current policy (compare-and-set on the revision read, so a
    concurrent change is FAILED_PRECONDITION, never overwritten); returns (the policy, whether a new
    revision was recorded)."""
    async with open_caller_channel(target) as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        current: training_pb2.GetTrafficPolicyResponse = await stub.GetTrafficPolicy(
            training_pb2.GetTrafficPolicyRequest(model_name=model_name), timeout=timeout_s
        )
        response: training_pb2.SetTrafficPolicyResponse = await stub.SetTrafficPolicy(
            training_pb2.SetTrafficPolicyRequest(
                policy=changed_policy(current.policy, change, actor=actor, reason=reason),
                expected_revision=current.policy.revision,
            ),
            timeout=timeout_s,
        )
    return response.policy, response.policy.revision != current.policy.revision


async def policy_and_audit(
    target: str, model_name: str, *, limit: int, champion_alias: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> tuple[training_pb2.TrafficPolicy, list[training_pb2.TrafficPolicy], training_pb2.ModelVersion | None]:
    """The current policy, its newest ``limit`` revisions (newest first) and the version ``champion_alias``
    points at (None when the model has no such alias)."""
    async with open_caller_channel(target) as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        current: training_pb2.GetTrafficPolicyResponse = await stub.GetTrafficPolicy(
            training_pb2.GetTrafficPolicyRequest(model_name=model_name), timeout=timeout_s
        )
        audit: training_pb2.ListTrafficPolicyAuditResponse = await stub.ListTrafficPolicyAudit(
            training_pb2.ListTrafficPolicyAuditRequest(
                model_name=model_name, page=common_pb2.PageRequest(page_size=limit)
            ),
            timeout=timeout_s,
        )
        champion: training_pb2.GetAliasResponse | None
        try:
            champion = await stub.GetAlias(
                training_pb2.GetAliasRequest(model_name=model_name, alias=champion_alias), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise
            champion = None
    return current.policy, list(audit.policies), None if champion is None else champion.model_version


async def promote(
    target: str, model_name: str, *, actor: str, reason: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> training_pb2.PromoteResponse:
    """Promote the model's canary (Promote)."""
    async with open_caller_channel(target) as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        response: training_pb2.PromoteResponse = await stub.Promote(
            training_pb2.PromoteRequest(model_name=model_name, actor=actor, reason=reason), timeout=timeout_s
        )
    return response


async def rollback(
    target: str, model_name: str, *, actor: str, reason: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> training_pb2.TrafficPolicy:
    """Roll the model's canary and shadow back (Rollback); returns the policy after it."""
    async with open_caller_channel(target) as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        response: training_pb2.RollbackResponse = await stub.Rollback(
            training_pb2.RollbackRequest(model_name=model_name, actor=actor, reason=reason), timeout=timeout_s
        )
    return response.policy
