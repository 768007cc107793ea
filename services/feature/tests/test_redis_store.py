"""The feature store with its online state on Redis (integration, the Redis `aimesh up` starts): the
service-level tests of the SQL store run again on it (stream, dead letters, online = historical,
backfill + stream + consistency check), plus what is Redis's own: the key layout and the script cache.

The store's contract itself runs on Redis in test_online_store.py / test_history_cache.py (``online``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.feature.service import FeatureStore

from . import test_backfill_and_check as backfill_tests
from . import test_updater_and_retrieval as retrieval_tests
from .conftest import FRAUD_V1_FILE, T0, apply, txn
from .online_backends import delete_keys, keys_under, redis_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(endpoints: Any, record_infra_version: Callable[[str, str], None]) -> AsyncIterator[Redis]:
    client = await redis_client(endpoints.redis_url, record_infra_version)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis, unique: str) -> AsyncIterator[str]:
    """A key prefix of this test; its keys are deleted afterwards."""
    yield f"test:{unique}:"
    await delete_keys(redis, f"test:{unique}:")


@pytest.fixture
async def features(
    sql_database: Callable[[str], AbstractAsyncContextManager[AsyncEngine]],
    endpoints: Any,
    prefix: str,
    tmp_path: Path,
) -> AsyncIterator[FeatureStore]:
    """As conftest's ``features`` (registry on SQLite), with the online store on Redis under ``prefix``."""
    async with sql_database("sqlite") as engine:
        f = FeatureStore(
            engine,
            tmp_path / "lake",
            allowed_lateness=timedelta(days=30),
            online_store_url=endpoints.redis_url,
            online_store_prefix=prefix,
        )
        await f.start(FRAUD_V1_FILE)
        yield f
        await f.stop()


async def test_the_feature_store_uses_redis_with_one_key_per_kind_and_entity(
    features: FeatureStore, redis: Redis, prefix: str
) -> None:
    assert features.store.kind == "redis"
    await apply(features, 3, [(41, txn("a", T0, card="c1", customer="u1"))])
    names = [key.decode().removeprefix(prefix) for key in await keys_under(redis, prefix)]
    assert names == [
        "e:card_txn_stats:c1",
        "e:customer_txn_stats:u1",
        "offsets",
        "s:card_txn_stats:c1",  # the card view's is_new fields; the customer view has none
        "t:card_txn_stats:c1",
        "t:customer_txn_stats:u1",
    ]
    assert await redis.hgetall(f"{prefix}offsets") == {b"records:3": b"42"}
    assert await redis.hgetall(f"{prefix}s:card_txn_stats:c1") == {
        b"country:DE": b"%d" % T0,
        b"device_id:d1": b"%d" % T0,
    }


async def test_the_scripts_are_loaded_again_when_the_server_lost_them(features: FeatureStore, redis: Redis) -> None:
    await redis.script_flush()  # as after a restart of redis-server
    result = await apply(features, 0, [(0, txn("a", T0))])
    assert result.applied == 1
    await redis.script_flush()
    features.store.cache.invalidate([("card_txn_stats", "c1")])
    assert [
        e.event_id for e in (await features.store.load([("card_txn_stats", "c1")]))[("card_txn_stats", "c1")].events
    ] == ["a"]


async def test_updater_on_redis(features: FeatureStore) -> None:
    await retrieval_tests.test_updater_applies_ignores_dead_letters_and_skips_redeliveries(features)


async def test_online_equals_historical_on_redis(
    features: FeatureStore, write_lake: Callable[[Sequence[Any]], Path]
) -> None:
    await retrieval_tests.test_online_equals_historical_for_rows_after_the_last_event(features, write_lake)


async def test_backfill_then_stream_and_check_on_redis(features: FeatureStore) -> None:
    await backfill_tests.test_backfill_then_stream_without_gap_or_overlap_and_check_passes(features)


async def test_small_backfill_batches_give_the_same_state_on_redis(features: FeatureStore) -> None:
    await backfill_tests.test_small_backfill_batches_give_the_same_state(features)
