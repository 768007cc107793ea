"""Traffic policies through the real training service (in-process, auth on) on a PostgreSQL schema of its
own, with its ModelEvents on a (unique) real Kafka topic.

What it proves: SetTrafficPolicy records revisions (compare-and-set, the proto's refusals with their
status codes, an identical split and fallback recorded once), Promote moves the champion alias (audited)
and clears the canary in one call, Rollback clears canary and shadow once, both keep the fallback; every
change is one ModelEvent keyed by the model, in order (VERSION_REGISTERED x3, ALIAS_CHANGED,
TRAFFIC_POLICY_CHANGED, ALIAS_CHANGED, TRAFFIC_POLICY_CHANGED x2) with stable ids, each policy with its
fallback; a tenant without ``model.promote`` is refused; a fresh service on the same database serves the
same policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2, training_pb2_grpc
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel, open_channel
from aimesh.core.devauth import PLATFORM_TENANT, DevAuthority
from aimesh.core.runner import ServiceRuntime
from aimesh.training import app as training_app
from aimesh.training.app import TrainingParts, wire_training
from aimesh.training.registry import NewVersion
from aimesh.training.schema import traffic_policies
from aimesh.training.settings import TrainingSettings
from tests.integration.test_training_service import free_port, read_topic

pytestmark = [pytest.mark.integration]


@pytest.fixture
async def schema_engine(
    sql_database: Callable[[str], AbstractAsyncContextManager[AsyncEngine]], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncEngine]:
    """A PostgreSQL schema of this test's own (root conftest; dropped afterwards) as the training service's
    database: ``wire_training`` gets its engine (it migrates it), on every start."""
    async with sql_database("postgresql") as engine:
        monkeypatch.setattr(training_app, "create_engine", lambda url, **options: engine)
        yield engine


async def start(settings: TrainingSettings) -> tuple[ServiceRuntime, asyncio.Task[None], TrainingParts]:
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    parts = await wire_training(settings, runtime, producer)
    return runtime, asyncio.create_task(runtime.run()), parts


async def stop(runtime: ServiceRuntime, service: asyncio.Task[None]) -> None:
    runtime.request_stop()
    await asyncio.wait_for(service, timeout=30)


async def register_three(parts: TrainingParts, model: str) -> None:
    """Versions 1-3 of ``model`` straight into the registry (no training: the policy needs only the rows)."""

    async def export(version: int) -> str:
        return f"file:///nowhere/{model}/{version}/model.pt"

    for run in ("a", "b", "c"):
        await parts.registry.register(
            NewVersion(
                model_name=model,
                run_id=f"run-{run}",
                features=["payment:amount"],
                feature_service="toy_v1",
                metrics={"auc": 0.9},
                reference_profile=training_pb2.ScoreProfile(),
                triton_model_name=f"{model}_mlp",
                signature=signature_pb2.ModelSignature(key_entity="card"),
            ),
            export,
        )


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_policies_promote_and_rollback_are_audited_and_announced_in_order(
    endpoints: Any,
    make_topic: Any,
    unique: str,
    tmp_path: Path,
    schema_engine: AsyncEngine,
    dev_authority: DevAuthority,
) -> None:
    models_topic = await make_topic("registry-models")
    model = f"policy_it_{unique}"
    settings = TrainingSettings(
        grpc_port=free_port(),
        admin_port=free_port(),
        kafka_bootstrap=endpoints.kafka_bootstrap,
        consumer_group=f"training-policy-it-{unique}",
        topics=[await make_topic("alerts")],
        registry_topic=models_topic,
        runs_topic=await make_topic("training-runs"),
        data_dir=tmp_path / "data",
        lake_dir=tmp_path / "lake",
        model_repository=tmp_path / "models",
        triton_grpc=endpoints.triton_grpc,
        database_url=endpoints.postgres_url,
        ship_logs=False,
        shutdown_grace_seconds=3,
        outbox_interval_seconds=1,
    )
    runtime, service, parts = await start(settings)
    address = f"127.0.0.1:{settings.grpc_port}"
    channel = open_caller_channel(address)
    platform = open_channel(
        address, token_file=dev_authority.write_token("platform", "it-platform", tenant=PLATFORM_TENANT)
    )
    try:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        await channel.channel_ready()
        await register_three(parts, model)
        await stub.SetAlias(
            training_pb2.SetAliasRequest(model_name=model, alias="champion", version=1, actor="it"), timeout=5
        )
        never = (await stub.GetTrafficPolicy(training_pb2.GetTrafficPolicyRequest(model_name=model), timeout=5)).policy
        assert (never.model_name, never.revision) == (model, 0)

        def set_policy(expected: int | None = None, **split: Any) -> Any:
            request = training_pb2.SetTrafficPolicyRequest(
                policy=training_pb2.TrafficPolicy(model_name=model, actor="ann", reason="try v2", **split)
            )
            if expected is not None:
                request.expected_revision = expected
            return stub.SetTrafficPolicy(request, timeout=5)

        split: dict[str, Any] = {"canary_version": 2, "canary_weight": 0.2, "shadow_version": 3, "shadow_share": 0.5}
        fallback = training_pb2.Fallback(constant_score=0.125)
        first = (await set_policy(0, **split, fallback=fallback)).policy
        assert (first.revision, first.canary_version, first.canary_weight, first.shadow_version) == (1, 2, 0.2, 3)
        assert first.fallback == fallback
        assert (await set_policy(**split, fallback=fallback)).policy == first
        not_finite = await refused(set_policy(**split, fallback=training_pb2.Fallback(constant_score=float("inf"))))
        assert not_finite.code() == grpc.StatusCode.INVALID_ARGUMENT and "policy.fallback.constant_score" in (
            not_finite.details() or ""
        )

        stale = await refused(set_policy(0, canary_version=3, canary_weight=0.1))
        assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION and "revision 1" in (stale.details() or "")
        champion = await refused(set_policy(canary_version=1, canary_weight=0.1))
        assert champion.code() == grpc.StatusCode.INVALID_ARGUMENT and "policy.canary_version" in (
            champion.details() or ""
        )
        weight = await refused(set_policy(canary_version=2, canary_weight=2.0))
        assert weight.code() == grpc.StatusCode.INVALID_ARGUMENT and "policy.canary_weight" in (weight.details() or "")
        missing = await refused(set_policy(canary_version=9, canary_weight=0.1))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        unknown = await refused(
            stub.GetTrafficPolicy(training_pb2.GetTrafficPolicyRequest(model_name="nope"), timeout=5)
        )
        assert unknown.code() == grpc.StatusCode.NOT_FOUND
        denied = await refused(
            training_pb2_grpc.TrainingServiceStub(platform).Promote(
                training_pb2.PromoteRequest(model_name=model, actor="intruder"), timeout=5
            )
        )
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

        promoted = await stub.Promote(
            training_pb2.PromoteRequest(model_name=model, actor="bob", reason="v2 wins"), timeout=5
        )
        assert (promoted.champion.previous_version, promoted.champion.new_version) == (1, 2)
        assert (promoted.policy.revision, promoted.policy.canary_version, promoted.policy.shadow_version) == (2, 0, 3)
        assert promoted.policy.fallback == fallback
        no_canary = await refused(stub.Promote(training_pb2.PromoteRequest(model_name=model, actor="bob"), timeout=5))
        assert no_canary.code() == grpc.StatusCode.FAILED_PRECONDITION
        rolled = (await stub.Rollback(training_pb2.RollbackRequest(model_name=model, actor="cat"), timeout=5)).policy
        assert (rolled.revision, rolled.canary_version, rolled.shadow_version, rolled.actor) == (3, 0, 0, "cat")
        assert rolled.fallback == fallback
        again = (await stub.Rollback(training_pb2.RollbackRequest(model_name=model, actor="cat"), timeout=5)).policy
        assert again == rolled

        audit = await stub.ListTrafficPolicyAudit(
            training_pb2.ListTrafficPolicyAuditRequest(model_name=model, page={"page_size": 2}), timeout=5
        )
        assert [(p.revision, p.actor) for p in audit.policies] == [(3, "cat"), (2, "bob")]
        assert audit.page.next_page_token == "2"
        aliases = await stub.ListAliasAudit(training_pb2.ListAliasAuditRequest(model_name=model), timeout=5)
        assert [(c.actor, c.reason, c.new_version) for c in aliases.changes] == [("bob", "v2 wins", 2), ("it", "", 1)]

        events = await read_topic(endpoints.kafka_bootstrap, models_topic, events_pb2.ModelEvent, expect=8)
        assert {key for key, _h, _e in events} == {model.encode()}
        registered, changed, policy = (
            events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
            events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
            events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED,
        )
        assert [(e.kind, e.version, e.traffic_policy.revision) for _k, _h, e in events] == [
            (registered, 1, 0),
            (registered, 2, 0),
            (registered, 3, 0),
            (changed, 1, 0),
            (policy, 0, 1),
            (changed, 2, 0),
            (policy, 0, 2),
            (policy, 0, 3),
        ]
        assert events[4][2].traffic_policy == first and events[6][2].traffic_policy == promoted.policy
        assert [e.traffic_policy.fallback.constant_score for _k, _h, e in events if e.kind == policy] == [0.125] * 3
        assert events[5][2].alias_change == promoted.champion
        assert [h["ce_id"] for _k, h, e in events if e.kind == policy] == [
            f"registry/{model}/policy/{n}".encode() for n in (1, 2, 3)
        ]

        async with schema_engine.connect() as conn:  # the service's revisions are in this test's schema
            stored = (
                await conn.execute(
                    select(traffic_policies.c.revision, traffic_policies.c.fallback_constant_score).order_by("revision")
                )
            ).all()
        assert [tuple(row) for row in stored] == [(1, 0.125), (2, 0.125), (3, 0.125)]

        await stop(runtime, service)
        restart = settings.model_copy(update={"grpc_port": free_port(), "admin_port": free_port()})
        runtime, service, _parts = await start(restart)
        async with open_caller_channel(f"127.0.0.1:{restart.grpc_port}") as fresh:
            kept = await training_pb2_grpc.TrainingServiceStub(fresh).GetTrafficPolicy(
                training_pb2.GetTrafficPolicyRequest(model_name=model), timeout=10
            )
        assert kept.policy == rolled
    finally:
        await channel.close()
        await platform.close()
        await stop(runtime, service)
