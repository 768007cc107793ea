"""The TrainingService gRPC API: a thin adapter over the run worker, the run store, the registry and the deployer."""

from __future__ import annotations

import grpc

from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core.errors import InvalidArgument
from aimesh.core.validation import check_length
from aimesh.training.deploy import Deployer
from aimesh.training.paging import page_of
from aimesh.training.registry import Registry
from aimesh.training.runs import RunStore
from aimesh.training.spec import check_spec
from aimesh.training.worker import RunWorker

REASON_MAX_BYTES = 4096
"""The longest reason (UTF-8 bytes) SetAlias and the traffic-policy RPCs store in the audit."""


def _required(value: str, name: str) -> str:
    """``value``; ``InvalidArgument`` when it is empty or longer than ``MAX_NAME_BYTES`` (it is a key in SQL)."""
    if not value:
        raise InvalidArgument(f"{name} is required")
    check_length(name, value)
    return value


class TrainingServiceApi(training_pb2_grpc.TrainingServiceServicer):
    """Implements every TrainingService RPC; domain errors map to status codes in the core interceptor."""

    def __init__(self, *, worker: RunWorker, runs: RunStore, registry: Registry, deployer: Deployer) -> None:
        self._worker = worker
        self._runs = runs
        self._registry = registry
        self._deployer = deployer

    async def StartRun(
        self, request: training_pb2.StartRunRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.StartRunResponse:
        check_length("idempotency_key", request.idempotency_key)
        run = await self._worker.start(request.spec, idempotency_key=request.idempotency_key, trigger=request.trigger)
        return training_pb2.StartRunResponse(run=run)

    async def GetRun(
        self, request: training_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.GetRunResponse:
        return training_pb2.GetRunResponse(run=await self._runs.get(_required(request.run_id, "run_id")))

    async def ListRuns(
        self, request: training_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.ListRunsResponse:
        check_length("model_name", request.model_name)
        page = page_of(request.page)
        found = await self._runs.list_runs(page, model_name=request.model_name, status=request.status)
        return training_pb2.ListRunsResponse(runs=found[: page.limit], page=page.response(len(found)))

    async def RegisterModel(
        self, request: training_pb2.RegisterModelRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.RegisterModelResponse:
        model_name = _required(request.model_name, "model_name")
        run = await self._runs.get(_required(request.run_id, "run_id"))
        plan = check_spec(run.spec)
        version, _ = await self._deployer.register(
            model_name,
            run.run_id,
            feature_service=run.spec.feature_service,
            triton_model_name=plan.triton_model_name,
        )
        return training_pb2.RegisterModelResponse(model_version=version)

    async def GetModelVersion(
        self, request: training_pb2.GetModelVersionRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.GetModelVersionResponse:
        version = await self._registry.get_version(_required(request.model_name, "model_name"), request.version)
        return training_pb2.GetModelVersionResponse(model_version=version)

    async def ListModelVersions(
        self, request: training_pb2.ListModelVersionsRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.ListModelVersionsResponse:
        page = page_of(request.page)
        found = await self._registry.list_versions(_required(request.model_name, "model_name"), page)
        return training_pb2.ListModelVersionsResponse(
            model_versions=found[: page.limit], page=page.response(len(found))
        )

    async def SetAlias(
        self, request: training_pb2.SetAliasRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.SetAliasResponse:
        check_length("actor", request.actor)
        check_length("reason", request.reason, REASON_MAX_BYTES)
        change = await self._registry.set_alias(
            _required(request.model_name, "model_name"),
            request.alias,
            request.version,
            actor=request.actor,
            reason=request.reason,
            expected_version=request.expected_version if request.HasField("expected_version") else None,
        )
        await self._deployer.publish_pending()
        return training_pb2.SetAliasResponse(change=change)

    async def GetAlias(
        self, request: training_pb2.GetAliasRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.GetAliasResponse:
        version = await self._registry.get_alias(
            _required(request.model_name, "model_name"), _required(request.alias, "alias")
        )
        return training_pb2.GetAliasResponse(model_version=version)

    async def ListAliasAudit(
        self, request: training_pb2.ListAliasAuditRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.ListAliasAuditResponse:
        page = page_of(request.page)
        check_length("alias", request.alias)
        found = await self._registry.list_audit(_required(request.model_name, "model_name"), request.alias, page)
        return training_pb2.ListAliasAuditResponse(changes=found[: page.limit], page=page.response(len(found)))

    async def SetTrafficPolicy(
        self, request: training_pb2.SetTrafficPolicyRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.SetTrafficPolicyResponse:
        _required(request.policy.model_name, "policy.model_name")
        check_length("policy.actor", request.policy.actor)
        check_length("policy.reason", request.policy.reason, REASON_MAX_BYTES)
        policy = await self._registry.set_traffic_policy(
            request.policy,
            expected_revision=request.expected_revision if request.HasField("expected_revision") else None,
        )
        await self._deployer.publish_pending()
        return training_pb2.SetTrafficPolicyResponse(policy=policy)

    async def GetTrafficPolicy(
        self, request: training_pb2.GetTrafficPolicyRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.GetTrafficPolicyResponse:
        policy = await self._registry.get_traffic_policy(_required(request.model_name, "model_name"))
        return training_pb2.GetTrafficPolicyResponse(policy=policy)

    async def ListTrafficPolicyAudit(
        self, request: training_pb2.ListTrafficPolicyAuditRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.ListTrafficPolicyAuditResponse:
        page = page_of(request.page)
        found = await self._registry.list_traffic_policy_audit(_required(request.model_name, "model_name"), page)
        return training_pb2.ListTrafficPolicyAuditResponse(policies=found[: page.limit], page=page.response(len(found)))

    async def Promote(
        self, request: training_pb2.PromoteRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.PromoteResponse:
        check_length("actor", request.actor)
        check_length("reason", request.reason, REASON_MAX_BYTES)
        change, policy = await self._registry.promote(
            _required(request.model_name, "model_name"), actor=request.actor, reason=request.reason
        )
        await self._deployer.publish_pending()
        return training_pb2.PromoteResponse(champion=change, policy=policy)

    async def Rollback(
        self, request: training_pb2.RollbackRequest, context: grpc.aio.ServicerContext
    ) -> training_pb2.RollbackResponse:
        check_length("actor", request.actor)
        check_length("reason", request.reason, REASON_MAX_BYTES)
        policy = await self._registry.rollback(
            _required(request.model_name, "model_name"), actor=request.actor, reason=request.reason
        )
        await self._deployer.publish_pending()
        return training_pb2.RollbackResponse(policy=policy)
