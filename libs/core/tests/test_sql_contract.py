"""The SQL helpers, one contract run against every backend: SQLite (unit) and PostgreSQL (integration).

PostgreSQL is the server `aimesh up --infra-only` starts (``AIMESH_POSTGRES_URL``); each run gets its
own schema so runs never see each other's tables.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.sql import create_engine, insert_ignoring_duplicates, migrate, ping

MIGRATIONS = Path(__file__).with_name("migrations")
_spec = importlib.util.spec_from_file_location("core_test_schema", MIGRATIONS / "schema.py")
assert _spec and _spec.loader
schema = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(schema)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def engine(request, tmp_path: Path, endpoints, unique: str, record_infra_version) -> AsyncIterator[AsyncEngine]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'contract.db'}")
        yield eng
        await eng.dispose()
        return
    schema_name = f"t_{unique}"
    admin = create_engine(endpoints.postgres_url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema_name}"'))
            version = (await conn.execute(text("SELECT version()"))).scalar_one()
    except OSError as exc:
        pytest.fail(f"PostgreSQL at {endpoints.postgres_url} is not reachable ({exc}); run `aimesh up --infra-only`")
    record_infra_version("PostgreSQL", str(version).split(" on ")[0])
    eng = create_engine(endpoints.postgres_url, connect_args={"server_settings": {"search_path": schema_name}})
    try:
        yield eng
    finally:
        await eng.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
        await admin.dispose()


def row(event_id: str, offset: int) -> dict[str, object]:
    return {"event_id": event_id, "partition": 0, "offset": offset, "handled_at": datetime.now(UTC)}


async def test_migrations_are_idempotent(engine: AsyncEngine) -> None:
    await migrate(engine, MIGRATIONS)
    await migrate(engine, MIGRATIONS)
    await ping(engine)
    async with engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0001"


async def test_replayed_inserts_are_ignored(engine: AsyncEngine) -> None:
    await migrate(engine, MIGRATIONS)
    async with engine.begin() as conn:
        assert await insert_ignoring_duplicates(conn, schema.processed, [row("a", 1), row("b", 2)]) == 2
    async with engine.begin() as conn:
        assert await insert_ignoring_duplicates(conn, schema.processed, [row("b", 2), row("c", 3)]) == 1
        assert await insert_ignoring_duplicates(conn, schema.processed, []) == 0
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.processed))).scalar_one()
    assert count == 3


async def test_a_failed_transaction_leaves_nothing(engine: AsyncEngine) -> None:
    await migrate(engine, MIGRATIONS)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await insert_ignoring_duplicates(conn, schema.processed, [row("x", 9)])
            raise RuntimeError("crash between effect and commit")
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.processed))).scalar_one()
    assert count == 0
