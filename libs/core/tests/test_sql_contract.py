"""The SQL helpers, one contract run against every backend: SQLite (unit) and PostgreSQL (integration).

PostgreSQL is the server `aimesh up --infra-only` starts (``AIMESH_POSTGRES_URL``); each run gets its
own schema so runs never see each other's tables (the root conftest's ``sql_engine`` fixture).
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.sql import insert_ignoring_duplicates, migrate, ping

MIGRATIONS = Path(__file__).with_name("migrations")
_spec = importlib.util.spec_from_file_location("core_test_schema", MIGRATIONS / "schema.py")
assert _spec and _spec.loader
schema = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(schema)


def row(event_id: str, offset: int) -> dict[str, object]:
    return {"event_id": event_id, "partition": 0, "offset": offset, "handled_at": datetime.now(UTC)}


async def test_migrations_are_idempotent(sql_engine: AsyncEngine) -> None:
    await migrate(sql_engine, MIGRATIONS)
    await migrate(sql_engine, MIGRATIONS)
    await ping(sql_engine)
    async with sql_engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0001"


async def test_replayed_inserts_are_ignored(sql_engine: AsyncEngine) -> None:
    await migrate(sql_engine, MIGRATIONS)
    async with sql_engine.begin() as conn:
        assert await insert_ignoring_duplicates(conn, schema.processed, [row("a", 1), row("b", 2)]) == 2
    async with sql_engine.begin() as conn:
        assert await insert_ignoring_duplicates(conn, schema.processed, [row("b", 2), row("c", 3)]) == 1
        assert await insert_ignoring_duplicates(conn, schema.processed, []) == 0
    async with sql_engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.processed))).scalar_one()
    assert count == 3


async def test_a_failed_transaction_leaves_nothing(sql_engine: AsyncEngine) -> None:
    await migrate(sql_engine, MIGRATIONS)
    with pytest.raises(RuntimeError):
        async with sql_engine.begin() as conn:
            await insert_ignoring_duplicates(conn, schema.processed, [row("x", 9)])
            raise RuntimeError("crash between effect and commit")
    async with sql_engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.processed))).scalar_one()
    assert count == 0
