"""Shared pytest fixtures: where the real servers are, a database per test, and a summary naming versions.

Integration tests talk to the servers that `aimesh up --infra-only` started (endpoints overridable
by environment variables). A missing server is a failure with the command that fixes it, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.sql import create_engine


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str = field(default_factory=lambda: os.environ.get("AIMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    elasticsearch_url: str = field(default_factory=lambda: os.environ.get("AIMESH_ES_URL", "http://127.0.0.1:9200"))
    triton_grpc: str = field(default_factory=lambda: os.environ.get("AIMESH_TRITON_GRPC", "127.0.0.1:8001"))
    triton_http: str = field(default_factory=lambda: os.environ.get("AIMESH_TRITON_HTTP", "127.0.0.1:8000"))
    postgres_url: str = field(
        default_factory=lambda: os.environ.get(
            "AIMESH_POSTGRES_URL", "postgresql+asyncpg://aimesh:aimesh@127.0.0.1:5433/aimesh_test"
        )
    )
    redis_url: str = field(default_factory=lambda: os.environ.get("AIMESH_REDIS_URL", "redis://127.0.0.1:6390/0"))


INFRA_VERSIONS: dict[str, str] = {}
"""Filled by integration fixtures: component name -> the version the server reported."""


@pytest.fixture(scope="session")
def endpoints() -> Endpoints:
    return Endpoints()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, index, group and table names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def record_infra_version() -> Iterator[object]:
    def record(name: str, version: str) -> None:
        INFRA_VERSIONS[name] = version

    yield record


@asynccontextmanager
async def _sql_database(
    kind: str, tmp_path: Path, endpoints: Endpoints, unique: str, record_infra_version: Callable[[str, str], None]
) -> AsyncIterator[AsyncEngine]:
    if kind == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        try:
            yield eng
        finally:
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


@pytest.fixture
def sql_database(
    tmp_path: Path, endpoints: Endpoints, unique: str, record_infra_version: Callable[[str, str], None]
) -> Callable[[str], AbstractAsyncContextManager[AsyncEngine]]:
    """``sql_database(kind)``: the empty database of ``sql_engine`` for ``kind`` ("sqlite" or "postgresql"),
    as an async context manager; for fixtures that parametrize over more backends than SQL ones."""
    return lambda kind: _sql_database(kind, tmp_path, endpoints, unique, record_infra_version)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def sql_engine(
    request: pytest.FixtureRequest, sql_database: Callable[[str], AbstractAsyncContextManager[AsyncEngine]]
) -> AsyncIterator[AsyncEngine]:
    """An empty database for one test, once per backend: a SQLite file under tmp_path (unit), or a
    schema of its own in the test PostgreSQL (integration; dropped with everything in it afterwards).

    Migrate it in a fixture of your own that depends on this one. An unreachable PostgreSQL fails the
    test with the command that starts it.
    """
    async with sql_database(request.param) as eng:
        yield eng


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if INFRA_VERSIONS:
        terminalreporter.section("real infrastructure under test")
        for name, version in sorted(INFRA_VERSIONS.items()):
            terminalreporter.write_line(f"{name}: {version}")
