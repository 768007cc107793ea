"""The registry contract (versions, aliases with compare-and-set, the audit, ModelEvents through the outbox),
run against SQLite (unit) and PostgreSQL (integration, the server `aimesh up --infra-only` starts)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound
from aimesh.core.sql import migrate
from aimesh.training.app import MIGRATIONS
from aimesh.training.outbox import OutboxRelay
from aimesh.training.paging import Page
from aimesh.training.registry import NewVersion, Registry

from .fakes import FakePublisher  # type: ignore[import-not-found]

TOPIC = "test.registry"


@pytest.fixture
async def engine(sql_engine: AsyncEngine) -> AsyncEngine:
    """The shared SQLite / per-run PostgreSQL schema engine (root conftest), migrated to the registry schema."""
    await migrate(sql_engine, MIGRATIONS)
    return sql_engine


def new_version(run_id: str, model: str = "fraud") -> NewVersion:
    return NewVersion(
        model_name=model,
        run_id=run_id,
        features=["card:card_txn_count_1h", "payment:amount"],
        feature_service="fraud_v1",
        metrics={"auc": 0.91},
        reference_profile=training_pb2.ScoreProfile(bin_edges=[0.0, 0.5, 1.0], fractions=[0.75, 0.25], count=4),
        signature=signature_pb2.ModelSignature(key_entity="card"),
        triton_model_name="fraud_mlp",
    )


async def export(version: int) -> str:
    return f"file:///repo/fraud_mlp/{version}/model.pt"


def model_events(publisher: FakePublisher) -> list[tuple[events_pb2.ModelEvent, dict[str, bytes]]]:
    out = []
    for value, headers in publisher.on(TOPIC):
        event = events_pb2.ModelEvent()
        event.ParseFromString(value)
        out.append((event, headers))
    return out


async def test_versions_are_numbered_per_model_and_idempotent_per_run(engine: AsyncEngine) -> None:
    registry = Registry(engine, topic=TOPIC)
    v1, created1 = await registry.register(new_version("run-a"), export)
    v1_again, created_again = await registry.register(new_version("run-a"), export)
    v2, _ = await registry.register(new_version("run-b"), export)
    other, _ = await registry.register(new_version("run-c", model="other"), export)
    assert (v1.version, created1, v1_again.version, created_again) == (1, True, 1, False)
    assert (v2.version, other.version) == (2, 1)
    assert v2.triton_model_version == 2 and v2.artifact_uri == "file:///repo/fraud_mlp/2/model.pt"
    assert list(v2.features) == ["card:card_txn_count_1h", "payment:amount"]
    assert v2.metrics["auc"] == pytest.approx(0.91) and v2.reference_profile.count == 4
    listed = await registry.list_versions("fraud", Page(0, 1))
    assert [v.version for v in listed] == [2, 1]  # limit + 1: a next page exists
    with pytest.raises(NotFound):
        await registry.get_version("fraud", 9)


async def test_alias_changes_are_audited_and_compare_and_set(engine: AsyncEngine) -> None:
    registry = Registry(engine, topic=TOPIC)
    await registry.register(new_version("run-a"), export)
    await registry.register(new_version("run-b"), export)
    first = await registry.set_alias("fraud", "champion", 1, actor="alice", reason="first", expected_version=0)
    assert (first.previous_version, first.new_version) == (0, 1)
    with pytest.raises(FailedPrecondition, match="points at 1, not 0"):
        await registry.set_alias("fraud", "champion", 2, actor="bob", reason="race", expected_version=0)
    second = await registry.set_alias("fraud", "champion", 2, actor="bob", reason="better", expected_version=1)
    same = await registry.set_alias("fraud", "champion", 2, actor="bob", reason="again")
    assert (second.previous_version, second.new_version) == (1, 2)
    assert same.previous_version == same.new_version == 2
    with pytest.raises(NotFound):
        await registry.set_alias("fraud", "champion", 7, actor="bob", reason="no such version")
    with pytest.raises(InvalidArgument):
        await registry.set_alias("fraud", "Champion!", 1, actor="bob", reason="bad name")

    assert (await registry.get_alias("fraud", "champion")).version == 2
    assert list((await registry.get_version("fraud", 2)).aliases) == ["champion"]
    audit = await registry.list_audit("fraud", "champion", Page(0, 10))
    assert [(c.actor, c.reason, c.previous_version, c.new_version) for c in audit] == [
        ("bob", "better", 1, 2),
        ("alice", "first", 0, 1),
    ]
    assert all(c.time.seconds > 0 for c in audit)
    with pytest.raises(NotFound):
        await registry.get_alias("fraud", "canary")


async def test_every_change_publishes_one_model_event_after_commit(engine: AsyncEngine) -> None:
    registry = Registry(engine, topic=TOPIC)
    publisher = FakePublisher()
    relay = OutboxRelay(engine, publisher)
    await registry.register(new_version("run-a"), export)
    await registry.set_alias("fraud", "champion", 1, actor="training", reason="auc")
    await registry.set_alias("fraud", "champion", 1, actor="training", reason="no-op")

    publisher.fail = True
    assert len(publisher.sent) == 0
    with pytest.raises(ConnectionError):
        await relay.flush()
    publisher.fail = False
    assert await relay.flush() == 2
    assert await relay.flush() == 0  # published ones are not sent again

    (registered, h1), (changed, h2) = model_events(publisher)
    assert registered.kind == events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED
    assert changed.kind == events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED
    for event in (registered, changed):
        assert (event.model_name, event.version, event.triton_model_name, event.triton_model_version) == (
            "fraud",
            1,
            "fraud_mlp",
            1,
        )
        assert list(event.features) == ["card:card_txn_count_1h", "payment:amount"]
        assert event.feature_service == "fraud_v1" and event.signature.key_entity == "card"
        assert list(event.reference_profile.fractions) == [0.75, 0.25]
    assert (changed.alias_change.alias, changed.alias_change.previous_version, changed.alias_change.new_version) == (
        "champion",
        0,
        1,
    )
    assert h1["ce_id"] == b"registry/fraud/version/1"
    assert h2["ce_id"].startswith(b"registry/fraud/alias/champion/")
    assert h2["ce_type"] == b"aimesh.api.training.v1.ModelEvent"
    assert all(k == "fraud" for t, _v, k, _h in publisher.sent if t == TOPIC)
