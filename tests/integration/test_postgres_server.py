"""A tiny check of the local PostgreSQL (started by `aimesh up --infra-only`): the ``aimesh`` role logs in
to ``aimesh_test`` with its password over TCP and the server names its version.

Environment: ``AIMESH_POSTGRES_URL`` (SQLAlchemy form, default
``postgresql+asyncpg://aimesh:aimesh@127.0.0.1:5433/aimesh_test``). Fails (never skips) when unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

pytestmark = [pytest.mark.integration]

UP_HINT = "start the local infrastructure first: `aimesh up --infra-only`"


async def test_aimesh_role_logs_in_and_server_names_its_version(
    endpoints: Any, record_infra_version: Callable[[str, str], None]
) -> None:
    url = endpoints.postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {url} is not reachable ({exc}); {UP_HINT}")
    try:
        version = await conn.fetchval("SELECT version()")
        user, database = await conn.fetchrow("SELECT current_user, current_database()")
        await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 100
    finally:
        await conn.close()
    print(f"PostgreSQL server version: {version}")
    record_infra_version("PostgreSQL", version.split(" on ")[0])
    assert version.startswith("PostgreSQL ")
    assert (user, database) == ("aimesh", url.rsplit("/", 1)[-1])
