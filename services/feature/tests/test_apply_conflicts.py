"""Applies that meet: concurrent applies are serialised, a writer that bypasses the registry lock makes
the loser abort, an apply ending after the store stopped starts no backfill, and feature names that would
make an on-demand expression ambiguous are refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.errors import Aborted, FailedPrecondition, InvalidArgument
from aimesh.feature.definitions.specs import parse_yaml
from aimesh.feature.definitions.store import VIEW, Action
from aimesh.feature.service import FeatureStore

VIEW_V1 = """
feature_views:
  - name: card_race
    entity: card
    source: card_transactions
    ttl: {ttl}
    features: [{{name: race_txn_count_1h, aggregation: count, window: 1h}}]
"""
ROUNDS = 5


async def test_concurrent_applies_are_serialised_not_internal_errors(
    features: FeatureStore, sql_engine: AsyncEngine, tmp_path: Path
) -> None:
    other = FeatureStore(sql_engine, tmp_path / "lake")  # another replica on the same database
    await other.start(None)
    same = parse_yaml(VIEW_V1.format(ttl="1d"))
    created = await asyncio.gather(features.apply(same, False), other.apply(same, False))
    assert sorted(o.changes[0].action for o in created) == [Action.CREATED, Action.UNCHANGED]
    for i in range(ROUNDS):
        first, second = parse_yaml(VIEW_V1.format(ttl=f"{2 * i + 2}d")), parse_yaml(VIEW_V1.format(ttl=f"{2 * i + 3}d"))
        outcomes = await asyncio.gather(features.apply(first, False), other.apply(second, False))
        assert sorted(o.changes[0].version for o in outcomes) == [2 * i + 2, 2 * i + 3]
    await features.wait_for_backfills()
    await other.wait_for_backfills()
    latest = await features.definitions.latest()
    assert latest.versions[(VIEW, "card_race")] == 2 * ROUNDS + 1


async def until_blocked_by(engine: AsyncEngine, pid: int, waiter: asyncio.Task[object], limit_s: float) -> None:
    """Returns once a PostgreSQL backend waits for a lock that backend ``pid`` holds; fails the test when
    ``waiter`` ends first (with what it raised) or after ``limit_s``.

    Each check is a transaction of its own: PostgreSQL reads pg_stat_activity once per transaction, so
    checks in one transaction would never see a backend that connected after the first of them.
    """
    blocked = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deadline = time.monotonic() + limit_s
    async with engine.connect() as watch:
        while not (await watch.execute(blocked, {"pid": pid})).scalar_one():
            await watch.rollback()
            if waiter.done():
                await waiter  # raises what made it end
                pytest.fail("the apply ended without waiting for the row")
            assert time.monotonic() < deadline, f"the apply did not wait for the row within {limit_s} s"
            await asyncio.sleep(0.02)


async def test_a_writer_bypassing_the_registry_lock_makes_the_colliding_apply_abort(
    features: FeatureStore, sql_engine: AsyncEngine
) -> None:
    if sql_engine.dialect.name != "postgresql":
        pytest.skip("on SQLite a second writer holds the database write lock, so the apply waits instead")
    await features.apply(parse_yaml(VIEW_V1.format(ttl="1d")), False)
    await features.wait_for_backfills()  # nothing else of this store runs while the apply is watched
    async with sql_engine.begin() as bypass:  # a replica of a release without the lock stores version 2
        pid = (await bypass.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        spec = orjson.dumps(parse_yaml(VIEW_V1.format(ttl="3d")).feature_views[0].model_dump(mode="json"))
        await bypass.execute(
            text(
                "INSERT INTO feature_definitions (kind, name, version, spec, created_at_us) "
                "VALUES ('feature_view', 'card_race', 2, :spec, 0)"
            ),
            {"spec": spec.decode()},
        )
        apply = asyncio.create_task(features.apply(parse_yaml(VIEW_V1.format(ttl="2d")), False))
        try:
            await until_blocked_by(sql_engine, pid, apply, limit_s=10)
        except BaseException:
            apply.cancel()  # or it would store its version 2 once the bypass rolls back, after the test
            raise
    with pytest.raises(Aborted) as err:
        await apply
    assert err.value.code is grpc.StatusCode.ABORTED
    assert "feature_view card_race (version 2 now stored by another writer)" in err.value.message
    assert "apply again" in err.value.message


async def test_an_apply_ending_after_the_store_stopped_starts_no_backfill(features: FeatureStore) -> None:
    await features.stop()  # the service stops while the apply is in flight
    outcome = await features.apply(parse_yaml(VIEW_V1.format(ttl="1d")), False)
    assert outcome.changes[0].action is Action.CREATED
    await features.wait_for_backfills()
    assert "card_race" in await features.definitions.views_needing_backfill(outcome.registry)


FRAUD_CUSTOMER_VIEW = """
feature_views:
  - name: customer_extra
    entity: customer
    source: card_transactions
    features: [{{name: {name}, aggregation: mean, field: amount, window: 7d}}]
"""


async def test_apply_refuses_a_feature_that_makes_a_stored_on_demand_name_ambiguous(features: FeatureStore) -> None:
    clash = parse_yaml(FRAUD_CUSTOMER_VIEW.format(name="card_amount_mean_7d"))
    with pytest.raises(FailedPrecondition) as err:
        await features.apply(clash, True)
    assert (
        "on-demand feature payment_request:amount_to_card_mean_7d: 'card_amount_mean_7d' would be ambiguous, "
        "defined by feature views card_txn_stats, customer_extra"
    ) in err.value.message
    with pytest.raises(FailedPrecondition):
        await features.apply(clash, False)
    assert "customer_extra" not in (await features.definitions.latest()).views
    await features.apply(parse_yaml(FRAUD_CUSTOMER_VIEW.format(name="customer_amount_mean_7d_extra")), True)


async def test_apply_refuses_a_feature_named_like_a_stored_on_demand_context_field(features: FeatureStore) -> None:
    with pytest.raises(FailedPrecondition) as err:
        await features.apply(parse_yaml(FRAUD_CUSTOMER_VIEW.format(name="merchant_category")), True)
    assert (
        "on-demand feature payment_request:merchant_category_risk: 'merchant_category' is a request-context field "
        "and would become customer_extra:merchant_category"
    ) in err.value.message


AMBIGUOUS_DOCUMENT = """
entities: [{name: card}]
feature_views:
  - name: a
    entity: card
    source: s
    ttl: 1d
    features: [{name: spend, aggregation: sum, field: amount}]
  - name: b
    entity: card
    source: s
    features: [{name: spend, aggregation: sum, field: amount, window: 1d}]
  - name: scores
    source: request
    features:
      - {name: ok, aggregation: on_demand, expression: "amount * 2"}
      - {name: ratio, aggregation: on_demand, expression: "amount / (spend + 1)"}
"""


def test_a_document_with_an_ambiguous_on_demand_name_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_yaml(AMBIGUOUS_DOCUMENT)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "feature_views[2].features[1].expression: 'spend' is ambiguous (a:spend, b:spend)" in err.value.message
    assert "features[0]" not in err.value.message
    parse_yaml(
        AMBIGUOUS_DOCUMENT.replace(
            "{name: spend, aggregation: sum, field: amount, window: 1d}",
            "{name: spend_1d, aggregation: sum, field: amount, window: 1d}",
        )
    )
