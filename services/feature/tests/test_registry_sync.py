"""Replicas on one database: definitions applied through one are served by the others within the
refresh interval, and a failing refresh is logged and retried without stopping the loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import NotFound
from aimesh.feature.definitions.specs import parse_yaml
from aimesh.feature.service import FeatureStore

INTERVAL_S = 0.2
NEW_VIEW = """
feature_views:
  - name: card_replica_check
    entity: card
    source: card_transactions
    features: [{name: replica_txn_count_1h, aggregation: count, window: 1h}]
"""
NEW_FEATURE = "card_replica_check:replica_txn_count_1h"


@pytest.fixture
async def replica(sql_engine: AsyncEngine, tmp_path: Path, features: FeatureStore) -> AsyncIterator[FeatureStore]:
    """A second feature store on the database of ``features`` (another service process), refreshing."""
    other = FeatureStore(sql_engine, tmp_path / "lake")
    await other.start(None)
    task = asyncio.create_task(other.registry_sync.run(INTERVAL_S))
    yield other
    await other.stop()
    await asyncio.wait_for(task, timeout=5)


async def serves(store: FeatureStore, feature: str) -> bool:
    """Whether GetOnlineFeatures of ``store`` answers for ``feature`` (False while it does not know it)."""
    try:
        await store.online.get(feature_pb2.GetOnlineFeaturesRequest(features=[feature], entity_ids=["c1"]))
    except NotFound:
        return False
    return True


async def wait_until_served(store: FeatureStore, feature: str, limit_s: float) -> float:
    """Seconds until ``store`` serves ``feature``; fails the test after ``limit_s``."""
    started = time.monotonic()
    while not await serves(store, feature):
        assert time.monotonic() - started < limit_s, f"{feature} not served within {limit_s} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_replica_serves_definitions_applied_elsewhere_within_the_interval(
    features: FeatureStore, replica: FeatureStore
) -> None:
    assert not await serves(replica, NEW_FEATURE)
    generation = replica.registry_sync.generation
    await features.apply(parse_yaml(NEW_VIEW), False)
    await features.wait_for_backfills()
    assert await serves(features, NEW_FEATURE)  # the applying process at once
    elapsed = await wait_until_served(replica, NEW_FEATURE, limit_s=INTERVAL_S + 2.0)
    assert elapsed < INTERVAL_S + 2.0
    assert replica.registry_sync.generation == features.registry_sync.generation == generation + 1
    assert replica.registry.current.versions == features.registry.current.versions


async def test_an_apply_storing_nothing_leaves_the_generation(features: FeatureStore, replica: FeatureStore) -> None:
    before = features.registry_sync.generation
    registry = replica.registry.current
    await features.apply(parse_yaml(NEW_VIEW), True)  # dry run
    await features.apply(parse_yaml("feature_views: []"), False)  # nothing to store
    assert (await features.definitions.newer_than(before)) is None
    await asyncio.sleep(3 * INTERVAL_S)
    assert replica.registry.current is registry  # nothing reloaded


async def test_a_failed_refresh_is_logged_and_retried(
    features: FeatureStore, replica: FeatureStore, sql_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aimesh.feature.registry_sync")
    async with sql_engine.begin() as conn:  # the registry unreadable, as during an outage
        await conn.execute(text("ALTER TABLE feature_registry RENAME TO feature_registry_away"))
    try:
        deadline = time.monotonic() + INTERVAL_S + 5.0
        while not any("refresh failed" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no failed refresh logged"
            await asyncio.sleep(0.02)
    finally:
        async with sql_engine.begin() as conn:
            await conn.execute(text("ALTER TABLE feature_registry_away RENAME TO feature_registry"))
    await features.apply(parse_yaml(NEW_VIEW), False)
    await features.wait_for_backfills()
    await wait_until_served(replica, NEW_FEATURE, limit_s=INTERVAL_S + 2.0)
