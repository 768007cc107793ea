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
from sqlalchemy import event, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_engine_from_config, create_async_engine
from sqlalchemy.schema import MetaData


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


async def ping(engine: AsyncEngine) -> None:
    """Readiness check: one ``SELECT 1``; raises when the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def migrate(url: str, script_location: Path) -> None:
    """Upgrade the database at ``url`` to the newest revision in ``script_location`` (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    await asyncio.to_thread(command.upgrade, cfg, "head")


def run_alembic_env(target_metadata: MetaData) -> None:
    """The body of a service's Alembic ``env.py`` (online mode, async engine)."""

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

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
