"""SqlSeenStore contract on SQLite (unit) and PostgreSQL (integration): first position wins, durably."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.sql import migrate
from aimesh.ingest.seen_store import CHUNK, SqlSeenStore

MIGRATIONS = Path(__file__).parents[1] / "src" / "aimesh" / "ingest" / "migrations"


@pytest.fixture
async def store(sql_engine: AsyncEngine) -> SqlSeenStore:
    await migrate(sql_engine, MIGRATIONS)
    return SqlSeenStore(sql_engine)


async def test_new_ids_are_claimed_at_their_position_and_later_claims_get_the_first(store: SqlSeenStore) -> None:
    assert await store.claim("tx", {"a": ("up", 0, 1), "b": ("up", 0, 2)}) == {"a": ("up", 0, 1), "b": ("up", 0, 2)}

    again = await store.claim("tx", {"a": ("up", 0, 1), "b": ("up", 1, 9), "c": ("up", 1, 10)})

    assert again == {"a": ("up", 0, 1), "b": ("up", 0, 2), "c": ("up", 1, 10)}


async def test_ids_are_per_source(store: SqlSeenStore) -> None:
    await store.claim("tx", {"a": ("up", 0, 1)})

    assert await store.claim("cb", {"a": ("cb", 0, 7)}) == {"a": ("cb", 0, 7)}


async def test_a_batch_larger_than_one_statement_is_claimed_whole(store: SqlSeenStore) -> None:
    positions = {f"id-{n}": ("up", 0, n) for n in range(CHUNK * 2 + 3)}

    assert await store.claim("tx", positions) == positions
    assert await store.claim("tx", {}) == {}


async def test_claims_survive_a_new_store_on_the_same_database(store: SqlSeenStore, sql_engine: AsyncEngine) -> None:
    await store.claim("tx", {"a": ("up", 0, 1)})

    assert await SqlSeenStore(sql_engine).claim("tx", {"a": ("up", 2, 50)}) == {"a": ("up", 0, 1)}
