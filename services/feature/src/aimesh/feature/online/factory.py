"""The one place that picks an online store implementation: by URL (empty: the service's SQL database)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.feature.online.protocol import DEFAULT_ALLOWED_LATENESS, DEFAULT_CACHE_ENTRIES, OnlineStateStore
from aimesh.feature.online.redis_store import DEFAULT_PREFIX, RedisOnlineStore
from aimesh.feature.online.sql_store import SqlOnlineStore


def open_online_store(
    url: str,
    engine: AsyncEngine,
    *,
    prefix: str | None = None,
    allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
    cache_entries: int = DEFAULT_CACHE_ENTRIES,
) -> OnlineStateStore:
    """The online store at ``url``: an empty one gives the SQL store on ``engine``; a Redis URL
    (``redis://``, ``rediss://``, ``unix://``) the Redis store with a client of its own (keys under
    ``prefix``, default ``redis_store.DEFAULT_PREFIX``; it connects lazily). Raises ValueError for any
    other URL. Call ``migrate`` before use and ``aclose`` after."""
    if not url:
        return SqlOnlineStore(engine, allowed_lateness=allowed_lateness, cache_entries=cache_entries)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisOnlineStore.from_url(
            url,
            prefix=DEFAULT_PREFIX if prefix is None else prefix,
            allowed_lateness=allowed_lateness,
            cache_entries=cache_entries,
        )
    raise ValueError(f"online store URL {url!r}: use a redis://, rediss:// or unix:// URL, or none for SQL")
