"""The online store's backends for its contract suite: SQLite (unit), PostgreSQL and Redis (integration).

Each ``OnlineBackend`` gives the store under test, a way to build more stores over the same storage
(other settings, another process's view), and two ways to look behind the store's back: ``dump`` (every
stored row / key, for "nothing changed" checks) and ``erase_events`` (another writer deleting events).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.feature import schema
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import load_file
from aimesh.feature.online.protocol import ApplyResult, OnlineStateStore
from aimesh.feature.online.redis_store import RedisOnlineStore
from aimesh.feature.online.sql_store import SqlOnlineStore
from aimesh.feature.records import SourceRecord

from .conftest import FRAUD_V1_FILE, project

LATENESS = timedelta(days=30)
"""The allowed lateness of ``OnlineBackend.store`` (the ``features`` fixture's)."""

Dump = dict[str, list[tuple[Any, ...]]]


@dataclass
class OnlineBackend:
    """One storage backend: ``store`` (allowed lateness ``LATENESS``, default cache) and its helpers."""

    name: str
    registry: Registry
    store: OnlineStateStore
    make: Callable[..., OnlineStateStore]
    """``make(allowed_lateness=..., cache_entries=...)``: another store over the same storage."""
    dump: Callable[[], Awaitable[Dump]]
    """Everything stored, sorted; for Redis also checks that each events hash and times set agree."""
    erase_events: Callable[[], Awaitable[None]]
    """Delete every stored event, as another writer would (first-seen times and offsets stay)."""

    async def apply(
        self, partition: int, batch: Sequence[tuple[int, SourceRecord | None]], topic: str = "records"
    ) -> ApplyResult:
        """Apply ``(offset, record)`` pairs through ``store``, projected by the test definitions."""
        retention = {v.name: v.retention_us for v in self.registry.views.values()}
        records = [(offset, project(self.registry, r) if r is not None else None) for offset, r in batch]
        return await self.store.apply(topic, partition, records, retention)

    async def stored_events(self) -> int:
        return sum(len(rows) for name, rows in (await self.dump()).items() if name in EVENT_TABLES)


EVENT_TABLES = (schema.view_events.name, "events")


@asynccontextmanager
async def sql_backend(name: str, engine: AsyncEngine) -> AsyncIterator[OnlineBackend]:
    def make(**options: Any) -> SqlOnlineStore:
        return SqlOnlineStore(engine, **options)

    async def dump() -> Dump:
        async with engine.connect() as conn:
            return {
                table.name: sorted(tuple(r) for r in (await conn.execute(select(table))).all())
                for table in (schema.view_events, schema.view_seen, schema.consumer_offsets)
            }

    async def erase_events() -> None:
        async with engine.begin() as conn:
            await conn.execute(delete(schema.view_events))

    store = make(allowed_lateness=LATENESS)
    await store.migrate()
    yield OnlineBackend(name, Registry(load_file(FRAUD_V1_FILE)), store, make, dump, erase_events)


@asynccontextmanager
async def redis_backend(
    url: str, prefix: str, record_infra_version: Callable[[str, str], None]
) -> AsyncIterator[OnlineBackend]:
    """A store on the Redis at ``url`` whose keys all start with ``prefix`` (deleted afterwards)."""
    client = await redis_client(url, record_infra_version)

    def make(**options: Any) -> RedisOnlineStore:
        return RedisOnlineStore(client, prefix=prefix, **options)

    async def keys(kind: str = "") -> list[bytes]:
        return await keys_under(client, f"{prefix}{kind}")

    async def dump() -> Dump:
        out: Dump = {"events": [], "times": [], "seen": [], "offsets": []}
        for key in await keys():
            name = key.decode().removeprefix(prefix)
            if name == "offsets":
                out["offsets"] += sorted((await client.hgetall(key)).items())
                continue
            kind, _, state = name.partition(":")
            if kind == "t":
                scored = await client.zrange(key, 0, -1, withscores=True)
                out["times"] += [(state, *pair) for pair in scored]
            else:
                rows = [(state, *item) for item in (await client.hgetall(key)).items()]
                out["events" if kind == "e" else "seen"] += sorted(rows)
        events, times = {(r[0], r[1]) for r in out["events"]}, {(r[0], r[1]) for r in out["times"]}
        assert events == times, f"events hashes and times sets disagree: {events ^ times}"
        return out

    async def erase_events() -> None:
        for key in await keys("e:") + await keys("t:"):
            await client.delete(key)

    store = make(allowed_lateness=LATENESS)
    await store.migrate()
    try:
        yield OnlineBackend("redis", Registry(load_file(FRAUD_V1_FILE)), store, make, dump, erase_events)
    finally:
        await delete_keys(client, prefix)
        await client.aclose()


async def redis_client(url: str, record_infra_version: Callable[[str, str], None]) -> Redis:
    """A client of the Redis at ``url`` that answered; fails the test with the fix when it does not answer."""
    client = Redis.from_url(url)
    try:
        info = await client.info("server")
    except (OSError, RedisError) as exc:
        await client.aclose()
        pytest.fail(f"Redis at {url} is not reachable ({exc}); run `aimesh up --infra-only`")
    record_infra_version("Redis", str(info["redis_version"]))
    return client


async def keys_under(client: Redis, prefix: str) -> list[bytes]:
    return sorted([key async for key in client.scan_iter(match=f"{prefix}*", count=1000)])


async def delete_keys(client: Redis, prefix: str) -> None:
    for key in await keys_under(client, prefix):
        await client.delete(key)


def open_backend(
    name: str,
    sql_database: Callable[[str], AbstractAsyncContextManager[AsyncEngine]],
    redis_url: str,
    prefix: str,
    record_infra_version: Callable[[str, str], None],
) -> AbstractAsyncContextManager[OnlineBackend]:
    """The backend ``name`` ("sqlite", "postgresql" or "redis") over fresh storage of this test."""
    if name == "redis":
        return redis_backend(redis_url, prefix, record_infra_version)

    @asynccontextmanager
    async def sql() -> AsyncIterator[OnlineBackend]:
        async with sql_database(name) as engine, sql_backend(name, engine) as backend:
            yield backend

    return sql()
