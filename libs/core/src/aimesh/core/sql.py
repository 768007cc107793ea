"""SQL through async SQLAlchemy 2: SQLite file by default, PostgreSQL by URL; Alembic migrations per service.

Each service keeps its own Alembic script directory whose ``env.py`` calls ``run_alembic_env`` with
its metadata; ``migrate()`` upgrades a database to head and is safe to run on every start.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Table, event, pool, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_engine_from_config, create_async_engine
from sqlalchemy.schema import MetaData
from sqlalchemy.sql.expression import Executable


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for ``url``. SQLite files get WAL mode and their directory created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **options)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **options)


async def insert_ignoring_duplicates(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping those whose primary or unique key exists already; returns rows inserted.

    The building block of idempotent effects: replaying the same events inserts nothing twice.
    Supported on SQLite and PostgreSQL (``ON CONFLICT DO NOTHING``). One cached statement executed
    for many parameter sets (SQLAlchemy batches them into multi-row INSERTs), so a hot path does not
    recompile SQL for every batch; the inserted rows are counted from ``RETURNING``.
    """
    return len(await insert_new(conn, table, rows))


async def insert_new(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """``insert_ignoring_duplicates`` that returns the primary keys of the rows it inserted (in no
    particular order), so a caller learns which rows were new without reading them back."""
    if not rows:
        return []
    dialect = conn.dialect.name
    stmt: Executable
    key = list(table.primary_key.columns) or list(table.columns)[:1]
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing().returning(*key)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing().returning(*key)
    else:
        raise NotImplementedError(f"insert_ignoring_duplicates supports SQLite and PostgreSQL, not {dialect}")
    result = await conn.execute(stmt, rows)
    return [tuple(row) for row in result.all()]


async def ping(engine: AsyncEngine) -> None:
    """Readiness check: one ``SELECT 1``; raises when the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def migrate(engine: AsyncEngine, script_location: Path) -> None:
    """Upgrade the database behind ``engine`` to the newest revision in ``script_location`` (idempotent).

    Runs in one transaction on one of the engine's connections, so connection options such as a
    PostgreSQL ``search_path`` apply to the migration too.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))

    def upgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)


def run_alembic_env(target_metadata: MetaData) -> None:
    """The body of a service's Alembic ``env.py``.

    Uses the connection ``migrate()`` hands over; from the ``alembic`` command line it connects to
    ``sqlalchemy.url`` with an async engine.
    """

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

    given = context.config.attributes.get("connection")
    if given is not None:
        do_run(given)
        return

    async def run_async() -> None:
        engine = async_engine_from_config(
            context.config.get_section(context.config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())
