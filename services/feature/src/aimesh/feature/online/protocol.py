"""What the feature service needs of an online store, and the values it exchanges with one.

Implemented by ``sql_store.SqlOnlineStore`` (SQLite or PostgreSQL) and ``redis_store.RedisOnlineStore``
(Redis), built by ``factory.open_online_store``; one contract suite tests both
(services/feature/tests/test_online_store.py). Callers use the protocol only, never a concrete store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from aimesh.feature.history import EntityHistory, StateKey
from aimesh.feature.online.cache import HistoryCache
from aimesh.feature.records import ViewEvent

DEFAULT_ALLOWED_LATENESS = timedelta(days=7)
DEFAULT_CACHE_ENTRIES = 200_000


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: records applied, records skipped as already applied (redelivered), view
    events skipped as later than the allowed lateness."""

    applied: int
    skipped: int
    late: int = 0


class OnlineStateStore(Protocol):
    """Per (feature view, entity) retained events and first-seen times, updated with exactly-once effect.

    - ``apply``: one partition batch's effects and the partition's next offset are written atomically;
      records below the stored offset are skipped; view events older than the entity's newest minus
      the allowed lateness are skipped and counted; each touched (view, entity) is pruned to its view's
      retention before its newest event;
    - effects are idempotent: events keyed by event id (a stream duplicate is ignored, a backfilled one
      overwrites), first-seen times kept as a min;
    - ``load``: each key's ``EntityHistory`` (``EMPTY_HISTORY`` when it has no event), through ``cache``,
      which the store invalidates after each of its writes;
    - ``newest_by_entity``: every entity of a view with its newest stored event time (the consistency
      check samples from it);
    - ``migrate`` creates what the store needs (idempotent, at start), ``ping`` raises unless the store
      answers (readiness), ``aclose`` releases what the store opened itself (not a caller's engine).

    ``kind`` names the backend (``sql``, ``redis``) for logs and probes.
    """

    kind: str
    cache: HistoryCache

    async def migrate(self) -> None: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...

    async def next_offset(self, topic: str, partition: int) -> int: ...

    async def offsets(self) -> dict[tuple[str, int], int]: ...

    async def apply(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[int, Sequence[ViewEvent] | None]],
        retention_us: Mapping[str, int],
    ) -> ApplyResult: ...

    async def write_backfill(self, events: Sequence[ViewEvent], retention_us: Mapping[str, int]) -> None: ...

    async def load(self, keys: Iterable[StateKey]) -> dict[StateKey, EntityHistory]: ...

    async def newest_by_entity(self, view: str) -> list[tuple[str, int]]: ...
