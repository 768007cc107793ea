"""The feature store assembled over one database and one lake: registry, online store, retrieval, apply, backfill.

Used by the service (``app``), the CLI's operations (``operations``) and the tests, so they all run the same
wiring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.bus import DeadLetterSink
from aimesh.core.sql import migrate
from aimesh.feature import schema
from aimesh.feature.definitions.registry import Registry, RegistryHolder
from aimesh.feature.definitions.specs import FeatureRepo, load_file
from aimesh.feature.definitions.store import ApplyOutcome, DefinitionStore
from aimesh.feature.definitions.sync import RegistrySync
from aimesh.feature.offline.backfill import BackfillResult, backfill_view
from aimesh.feature.online.factory import open_online_store
from aimesh.feature.online.protocol import DEFAULT_ALLOWED_LATENESS, DEFAULT_CACHE_ENTRIES, OnlineStateStore
from aimesh.feature.online.updater import OnlineUpdater
from aimesh.feature.serving.api import FeatureServiceApi
from aimesh.feature.serving.retrieval import HistoricalRetrieval, OnlineRetrieval, now_us

logger = logging.getLogger(__name__)


class FeatureStore:
    """Registry + online store + definitions over ``engine``, offline over ``lake_root``.

    The online store is the one ``online.factory.open_online_store`` opens for ``online_store_url``: the
    SQL one on ``engine``, or Redis when the URL names one (keys under ``online_store_prefix``, default
    the store's; the registry stays in ``engine``). ``cache_entries`` bounds the online store's read
    cache (0: off; see ``online.cache``). The served registry follows this process's applies at once and
    other processes' applies while ``registry_sync.run`` runs (the service runs it as a part; see
    ``definitions.sync``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        lake_root: Path,
        *,
        allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        clock_us: Callable[[], int] = now_us,
        online_store_url: str = "",
        online_store_prefix: str | None = None,
    ) -> None:
        self.engine = engine
        self.lake_root = lake_root
        self.store: OnlineStateStore = open_online_store(
            online_store_url,
            engine,
            prefix=online_store_prefix,
            allowed_lateness=allowed_lateness,
            cache_entries=cache_entries,
        )
        self.definitions = DefinitionStore(engine)
        self.registry = RegistryHolder(Registry(FeatureRepo()))
        self.registry_sync = RegistrySync(self.definitions, self.registry)
        self.online = OnlineRetrieval(self.store, self.registry, clock_us=clock_us)
        self.historical = HistoricalRetrieval(lake_root, self.registry)
        self._backfills: set[asyncio.Task[list[BackfillResult]]] = set()
        self._stopped = False

    async def start(self, definitions_file: Path | None) -> None:
        """Migrate, apply ``definitions_file`` (when given) and load the registry. Does not backfill.

        Raises InvalidArgument / FailedPrecondition when the file is invalid or breaks stored versions.
        """
        await migrate(self.engine, schema.MIGRATIONS)  # the registry's tables (the SQL online store's too)
        await self.store.migrate()
        if definitions_file is not None:
            outcome = await self.definitions.apply(load_file(definitions_file))
            changed = [f"{c.kind} {c.name} v{c.version} {c.action}" for c in outcome.changes if c.action != "unchanged"]
            logger.info("definitions from %s: %s", definitions_file, ", ".join(changed) or "unchanged")
        await self.registry_sync.refresh()

    async def apply(self, repo: FeatureRepo, dry_run: bool) -> ApplyOutcome:
        """Apply definitions; unless a dry run, serve the new registry and backfill new / re-laid-out
        views in the background (``wait_for_backfills``). Raises what ``DefinitionStore.apply`` raises."""
        outcome = await self.definitions.apply(repo, dry_run=dry_run)
        if not dry_run:
            self.registry_sync.offer(outcome.registry, outcome.generation)
            self.schedule_backfills()
        return outcome

    def schedule_backfills(self) -> None:
        """Start ``backfill_pending`` in the background (errors are logged; see ``wait_for_backfills``).

        Starts nothing once ``stop`` was called (for an apply still in flight then): that backfill would
        outlive the store and run on a closed database; its views stay pending for a later ``backfill_pending``.
        """
        if self._stopped:
            logger.info("background backfill not started: the feature store is stopped")
            return
        task = asyncio.create_task(self.backfill_pending())
        self._backfills.add(task)
        task.add_done_callback(self._backfill_done)

    def _backfill_done(self, task: asyncio.Task[list[BackfillResult]]) -> None:
        self._backfills -= {task}
        if not task.cancelled() and task.exception() is not None:
            logger.error("background backfill failed", exc_info=task.exception())

    async def wait_for_backfills(self) -> None:
        """Wait for the backfills ``apply`` started (their errors are logged, not raised)."""
        await asyncio.gather(*self._backfills, return_exceptions=True)

    async def stop(self) -> None:
        """Stop ``registry_sync.run``, cancel running backfills (re-running them later is idempotent) and
        start no more (see ``schedule_backfills``), release the online store's own connections (``aclose``)."""
        self._stopped = True
        await self.registry_sync.stop()
        for task in list(self._backfills):
            task.cancel()
        await self.wait_for_backfills()
        await self.store.aclose()

    async def backfill(self, view: str, *, on_progress: Callable[[int], None] | None = None) -> BackfillResult:
        """Backfill one view from the lake (idempotent; see ``offline.backfill``)."""
        return await backfill_view(
            self.registry.current, view, self.store, self.definitions, self.lake_root, on_progress=on_progress
        )

    async def backfill_pending(self) -> list[BackfillResult]:
        """Backfill every view whose online state was not backfilled for its current layout."""
        registry = self.registry.current
        pending = await self.definitions.views_needing_backfill(registry)
        return [await backfill_view(registry, name, self.store, self.definitions, self.lake_root) for name in pending]

    def api(self) -> FeatureServiceApi:
        return FeatureServiceApi(self.online, self.historical, self.apply)

    def updater(self, dead_letters: DeadLetterSink | None, *, service: str = "feature") -> OnlineUpdater:
        return OnlineUpdater(self.store, dead_letters, self.registry, service=service)
