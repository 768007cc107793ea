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
        input_profiles=[
            training_pb2.FeatureProfile(
                feature="payment:amount",
                kind=signature_pb2.INPUT_KIND_NUMERIC,
                bin_edges=[0.0, 10.0, 20.0],
                fractions=[0.5, 0.5],
                count=4,
            )
        ],
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
    assert [(p.feature, list(p.bin_edges)) for p in v2.input_profiles] == [("payment:amount", [0.0, 10.0, 20.0])]
    assert list((await registry.get_version("fraud", 2)).input_profiles) == list(v2.input_profiles)
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
        assert [p.feature for p in event.input_profiles] == ["payment:amount"]
    assert (changed.alias_change.alias, changed.alias_change.previous_version, changed.alias_change.new_version) == (
        "champion",
        0,
        1,
    )
    assert h1["ce_id"] == b"registry/fraud/version/1"
    assert h2["ce_id"].startswith(b"registry/fraud/alias/champion/")
    assert h2["ce_type"] == b"aimesh.api.training.v1.ModelEvent"
    assert all(k == "fraud" for t, _v, k, _h in publisher.sent if t == TOPIC)


def policy(model: str = "fraud", **split: float) -> training_pb2.TrafficPolicy:
    return training_pb2.TrafficPolicy(model_name=model, actor="alice", reason="try v2", **split)  # type: ignore[arg-type]


async def three_versions_champion_1(engine: AsyncEngine) -> Registry:
    registry = Registry(engine, topic=TOPIC)
    for run in ("run-a", "run-b", "run-c"):
        await registry.register(new_version(run), export)
    await registry.set_alias("fraud", "champion", 1, actor="alice", reason="first")
    return registry


@pytest.mark.parametrize(
    ("split", "field"),
    [
        ({"canary_version": 2, "canary_weight": 1.5}, "policy.canary_weight must be in"),
        ({"canary_version": 2, "canary_weight": -0.1}, "policy.canary_weight must be in"),
        ({"canary_version": 2, "canary_weight": float("nan")}, "policy.canary_weight must be in"),
        ({"shadow_version": 2, "shadow_share": float("inf")}, "policy.shadow_share must be in"),
        ({"shadow_version": 2, "shadow_share": 1.01}, "policy.shadow_share must be in"),
        ({"canary_weight": 0.1}, "policy.canary_weight is 0.1 but policy.canary_version is not set"),
        ({"shadow_share": 0.5}, "policy.shadow_share is 0.5 but policy.shadow_version is not set"),
        ({"canary_version": -2}, "policy.canary_version must not be negative"),
        ({"canary_version": 1, "canary_weight": 0.1}, "policy.canary_version 1 is the champion version"),
        ({"shadow_version": 1, "shadow_share": 0.1}, "policy.shadow_version 1 is the champion version"),
    ],
)
async def test_a_policy_outside_the_contract_is_invalid_argument_naming_the_field(
    engine: AsyncEngine, split: dict[str, float], field: str
) -> None:
    registry = await three_versions_champion_1(engine)
    with pytest.raises(InvalidArgument, match=field):
        await registry.set_traffic_policy(policy(**split))
    assert (await registry.get_traffic_policy("fraud")).revision == 0


async def test_unknown_models_and_versions_are_not_found_and_an_actor_is_required(engine: AsyncEngine) -> None:
    registry = await three_versions_champion_1(engine)
    with pytest.raises(NotFound, match="model 'nope' does not exist"):
        await registry.set_traffic_policy(policy("nope", canary_version=1, canary_weight=0.1))
    with pytest.raises(NotFound, match="has no version 9"):
        await registry.set_traffic_policy(policy(canary_version=2, canary_weight=0.1, shadow_version=9))
    for call in (registry.get_traffic_policy("nope"), registry.rollback("nope", actor="a", reason="")):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound):
        await registry.promote("nope", actor="a", reason="")
    with pytest.raises(InvalidArgument, match=r"policy\.actor is required"):
        await registry.set_traffic_policy(training_pb2.TrafficPolicy(model_name="fraud", canary_version=2))
    for empty_actor in (
        registry.promote("fraud", actor="", reason=""),
        registry.rollback("fraud", actor="", reason=""),
    ):
        with pytest.raises(InvalidArgument, match="actor is required"):
            await empty_actor
    assert await registry.list_traffic_policy_audit("fraud", Page(0, 10)) == []


async def test_policies_are_revisions_with_compare_and_set_and_an_identical_one_is_a_no_op(
    engine: AsyncEngine,
) -> None:
    registry = await three_versions_champion_1(engine)
    never = await registry.get_traffic_policy("fraud")
    assert (never.model_name, never.revision, never.canary_version, never.shadow_version) == ("fraud", 0, 0, 0)

    first = await registry.set_traffic_policy(policy(canary_version=2, canary_weight=0.1), expected_revision=0)
    assert (first.revision, first.canary_version, first.canary_weight, first.actor) == (1, 2, 0.1, "alice")
    assert first.time.seconds > 0
    with pytest.raises(FailedPrecondition, match="is at revision 1, not 0"):
        await registry.set_traffic_policy(policy(canary_version=3, canary_weight=0.2), expected_revision=0)
    same = await registry.set_traffic_policy(
        training_pb2.TrafficPolicy(model_name="fraud", canary_version=2, canary_weight=0.1, actor="bob", reason="x")
    )
    assert same == first  # nothing recorded: the current revision, its actor and time
    second = await registry.set_traffic_policy(
        policy(canary_version=2, canary_weight=0.5, shadow_version=3, shadow_share=0.25), expected_revision=1
    )
    assert (second.revision, second.shadow_version, second.shadow_share) == (2, 3, 0.25)
    assert await registry.get_traffic_policy("fraud") == second

    audit = await registry.list_traffic_policy_audit("fraud", Page(0, 1))
    assert [p.revision for p in audit] == [2, 1]  # newest first, limit + 1: a next page exists
    assert [p.revision for p in await registry.list_traffic_policy_audit("fraud", Page(1, 10))] == [1]
    assert audit[1] == first


async def test_promote_moves_the_champion_and_clears_the_canary_in_one_transaction_with_both_events(
    engine: AsyncEngine,
) -> None:
    registry = await three_versions_champion_1(engine)
    publisher = FakePublisher()
    relay = OutboxRelay(engine, publisher)
    with pytest.raises(FailedPrecondition, match="has no canary to promote"):
        await registry.promote("fraud", actor="carol", reason="nothing yet")
    await registry.set_traffic_policy(policy(canary_version=2, canary_weight=0.1, shadow_version=3, shadow_share=0.5))
    await relay.flush()
    publisher.sent.clear()

    change, after = await registry.promote("fraud", actor="carol", reason="v2 wins")
    assert (change.alias, change.previous_version, change.new_version, change.actor) == ("champion", 1, 2, "carol")
    assert (after.revision, after.canary_version, after.canary_weight) == (2, 0, 0.0)
    assert (after.shadow_version, after.shadow_share, after.actor, after.reason) == (3, 0.5, "carol", "v2 wins")
    assert (await registry.get_alias("fraud", "champion")).version == 2
    audit = await registry.list_audit("fraud", "champion", Page(0, 10))
    assert [(c.actor, c.reason, c.previous_version, c.new_version) for c in audit] == [
        ("carol", "v2 wins", 1, 2),
        ("alice", "first", 0, 1),
    ]

    assert await relay.flush() == 2
    (alias_event, h1), (policy_event, h2) = model_events(publisher)
    assert alias_event.kind == events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED and alias_event.version == 2
    assert alias_event.alias_change == change
    assert policy_event.kind == events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED
    assert (policy_event.model_name, policy_event.version, policy_event.traffic_policy) == ("fraud", 0, after)
    assert h2["ce_id"] == b"registry/fraud/policy/2" and h1["ce_id"].startswith(b"registry/fraud/alias/champion/")
    assert all(k == "fraud" for t, _v, k, _h in publisher.sent if t == TOPIC)


async def test_promoting_the_shadow_version_clears_the_shadow_too(engine: AsyncEngine) -> None:
    registry = await three_versions_champion_1(engine)
    await registry.set_traffic_policy(policy(canary_version=2, canary_weight=0.1, shadow_version=2, shadow_share=1.0))
    _change, after = await registry.promote("fraud", actor="carol", reason="")
    assert (after.canary_version, after.shadow_version, after.shadow_share) == (0, 0, 0.0)


async def test_a_failed_promote_changes_neither_the_alias_nor_the_policy(engine: AsyncEngine) -> None:
    registry = await three_versions_champion_1(engine)
    await registry.set_traffic_policy(policy(canary_version=2, canary_weight=0.3))
    before = await registry.get_traffic_policy("fraud")
    publisher = FakePublisher()
    await OutboxRelay(engine, publisher).flush()

    async def crash(*args: object, **kwargs: object) -> training_pb2.TrafficPolicy:
        raise RuntimeError("crash between the alias change and the policy revision")

    registry._write_policy = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await registry.promote("fraud", actor="carol", reason="")
    assert await registry.get_traffic_policy("fraud") == before
    assert (await registry.get_alias("fraud", "champion")).version == 1
    assert [c.new_version for c in await registry.list_audit("fraud", "", Page(0, 10))] == [1]
    assert await OutboxRelay(engine, publisher).flush() == 0  # the alias change's event was rolled back too


async def test_rollback_clears_canary_and_shadow_once_then_is_a_no_op(engine: AsyncEngine) -> None:
    registry = await three_versions_champion_1(engine)
    publisher = FakePublisher()
    relay = OutboxRelay(engine, publisher)
    untouched = await registry.rollback("fraud", actor="dave", reason="nothing set")
    assert untouched.revision == 0
    await registry.set_traffic_policy(policy(canary_version=2, canary_weight=0.1, shadow_version=3, shadow_share=0.5))
    rolled = await registry.rollback("fraud", actor="dave", reason="v2 errors")
    assert (rolled.revision, rolled.canary_version, rolled.canary_weight) == (2, 0, 0.0)
    assert (rolled.shadow_version, rolled.shadow_share, rolled.actor, rolled.reason) == (0, 0.0, "dave", "v2 errors")
    again = await registry.rollback("fraud", actor="dave", reason="again")
    assert again == rolled
    assert (await registry.get_alias("fraud", "champion")).version == 1

    await relay.flush()
    kinds = [e.kind for e, _h in model_events(publisher)]
    policies = [e.traffic_policy.revision for e, _h in model_events(publisher) if e.HasField("traffic_policy")]
    assert kinds.count(events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED) == 2 and policies == [1, 2]


def with_fallback(score: float, **split: float) -> training_pb2.TrafficPolicy:
    recorded = policy(**split)
    recorded.fallback.constant_score = score
    return recorded


@pytest.mark.parametrize("score", [float("nan"), float("inf"), float("-inf")])
async def test_a_fallback_score_that_is_not_finite_is_invalid_argument_naming_the_field(
    engine: AsyncEngine, score: float
) -> None:
    registry = await three_versions_champion_1(engine)
    with pytest.raises(
        InvalidArgument, match=r"policy\.fallback\.constant_score is (nan|inf|-inf), expected a finite number"
    ):
        await registry.set_traffic_policy(with_fallback(score, canary_version=2, canary_weight=0.1))
    assert (await registry.get_traffic_policy("fraud")).revision == 0


async def test_the_fallback_is_stored_read_back_announced_and_part_of_the_no_op_comparison(
    engine: AsyncEngine,
) -> None:
    registry = await three_versions_champion_1(engine)
    publisher = FakePublisher()
    relay = OutboxRelay(engine, publisher)
    first = await registry.set_traffic_policy(with_fallback(0.25, canary_version=2, canary_weight=0.1))
    assert (first.revision, first.fallback.WhichOneof("kind"), first.fallback.constant_score) == (
        1,
        "constant_score",
        0.25,
    )
    assert await registry.get_traffic_policy("fraud") == first
    assert (await registry.set_traffic_policy(with_fallback(0.25, canary_version=2, canary_weight=0.1))) == first

    zero = await registry.set_traffic_policy(with_fallback(0.0, canary_version=2, canary_weight=0.1))
    assert zero.revision == 2 and zero.HasField("fallback") and zero.fallback.HasField("constant_score")
    assert (await registry.get_traffic_policy("fraud")).fallback.HasField("constant_score")  # 0.0 is not "none"
    dropped = await registry.set_traffic_policy(policy(canary_version=2, canary_weight=0.1))
    assert dropped.revision == 3 and not dropped.HasField("fallback")
    assert await registry.get_traffic_policy("fraud") == dropped
    empty_kind = policy(canary_version=2, canary_weight=0.1)
    empty_kind.fallback.SetInParent()  # a Fallback without a kind is no fallback: the same policy
    assert await registry.set_traffic_policy(empty_kind) == dropped

    audit = await registry.list_traffic_policy_audit("fraud", Page(0, 10))
    assert [(p.revision, p.fallback.constant_score if p.HasField("fallback") else None) for p in audit] == [
        (3, None),
        (2, 0.0),
        (1, 0.25),
    ]
    await relay.flush()
    events = [e.traffic_policy for e, _h in model_events(publisher) if e.HasField("traffic_policy")]
    assert events == [first, zero, dropped]


async def test_promote_and_rollback_keep_the_fallback(engine: AsyncEngine) -> None:
    registry = await three_versions_champion_1(engine)
    await registry.set_traffic_policy(
        with_fallback(-1.5, canary_version=2, canary_weight=0.1, shadow_version=3, shadow_share=0.5)
    )
    _change, promoted = await registry.promote("fraud", actor="carol", reason="v2 wins")
    assert (promoted.revision, promoted.canary_version, promoted.fallback.constant_score) == (2, 0, -1.5)
    rolled = await registry.rollback("fraud", actor="dave", reason="v3 errors")
    assert (rolled.revision, rolled.shadow_version, rolled.fallback.constant_score) == (3, 0, -1.5)
    assert await registry.rollback("fraud", actor="dave", reason="again") == rolled  # a fallback alone stays
    assert await registry.get_traffic_policy("fraud") == rolled


async def test_rule_and_previous_version_fallbacks_are_stored_read_back_and_checked(engine: AsyncEngine) -> None:
    registry = await three_versions_champion_1(engine)
    ruled = policy(canary_version=2, canary_weight=0.1)
    condition = ruled.fallback.rule.conditions.add(field="context.amount", number=1000.0, score=0.9)
    condition.op = training_pb2.FallbackCondition.OP_GT
    ruled.fallback.rule.default_score = 0.05
    first = await registry.set_traffic_policy(ruled)
    assert first.fallback.rule == ruled.fallback.rule and await registry.get_traffic_policy("fraud") == first
    assert await registry.set_traffic_policy(ruled) == first, "the same rule is the same policy"

    bad = policy(canary_version=2, canary_weight=0.1)
    bad.fallback.rule.conditions.add(field="amount", op=training_pb2.FallbackCondition.OP_GT, number=1.0)
    with pytest.raises(InvalidArgument, match=r"policy\.fallback\.rule\.conditions\[0\]\.field is 'amount'"):
        await registry.set_traffic_policy(bad)

    previous = policy(canary_version=2, canary_weight=0.1)
    previous.fallback.previous_version.version = 3
    second = await registry.set_traffic_policy(previous)
    assert (second.revision, second.fallback.previous_version.version) == (2, 3)
    audit = await registry.list_traffic_policy_audit("fraud", Page(0, 10))
    assert [p.fallback.WhichOneof("kind") for p in audit] == ["previous_version", "rule"]

    previous.fallback.previous_version.version = 1
    with pytest.raises(InvalidArgument, match=r"policy\.fallback\.previous_version\.version 1 is the champion"):
        await registry.set_traffic_policy(previous)
    previous.fallback.previous_version.version = 9
    with pytest.raises(NotFound):
        await registry.set_traffic_policy(previous)


async def test_promoting_the_fallback_version_makes_the_former_champion_the_fallback(engine: AsyncEngine) -> None:
    registry = await three_versions_champion_1(engine)
    chosen = policy(canary_version=2, canary_weight=0.1)
    chosen.fallback.previous_version.version = 2
    await registry.set_traffic_policy(chosen)
    _change, promoted = await registry.promote("fraud", actor="carol", reason="v2 wins")
    assert promoted.fallback.previous_version.version == 1, "v2 is champion now: its fallback is the former one"
    kept = policy(canary_version=3, canary_weight=0.1)
    kept.fallback.previous_version.version = 1
    await registry.set_traffic_policy(kept)
    _change, again = await registry.promote("fraud", actor="carol", reason="v3 wins")
    assert again.fallback.previous_version.version == 1, "a fallback naming another version is kept"
