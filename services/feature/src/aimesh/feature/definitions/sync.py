"""Keeps a process's served registry on the newest definitions stored in its database.

Every feature-service replica on one database serves from its own ``RegistryHolder``. An apply
through this process swaps it at once (``offer``); definitions applied through another process are
picked up by ``run``, which polls the stored registry generation (one primary-key read) every
``interval_s`` seconds and loads the definitions only when the generation grew. So a replica serves
an older registry for at most about one interval after another replica's apply committed.

The holder only ever moves forward: a registry is swapped in only when its generation is above the
one served, so a slow poll that read an older state cannot undo a newer apply.
"""

from __future__ import annotations

import logging

from aimesh.core.periodic import PeriodicRefresh
from aimesh.feature.definitions.registry import Registry, RegistryHolder
from aimesh.feature.definitions.store import DefinitionStore

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 5.0


class RegistrySync:
    """Swaps ``holder``'s registry for newer stored ones (see the module doc)."""

    def __init__(self, definitions: DefinitionStore, holder: RegistryHolder) -> None:
        self._definitions = definitions
        self._holder = holder
        self._generation = -1  # below every stored generation: the first refresh always loads
        self._periodic = PeriodicRefresh(
            self.refresh,
            lambda: f"feature registry refresh failed; serving generation {self._generation} until the next try",
            log,
        )

    @property
    def generation(self) -> int:
        """The registry generation served (-1 before the first load)."""
        return self._generation

    def offer(self, registry: Registry, generation: int) -> bool:
        """Serve ``registry`` (of ``generation``) unless the one served is as new; returns whether it was swapped."""
        if generation <= self._generation:
            return False
        self._holder.replace(registry)
        self._generation = generation
        return True

    async def refresh(self) -> bool:
        """Load and serve the stored registry if its generation is above the one served; returns whether
        it was swapped. Raises what the database raises (nothing is swapped then)."""
        found = await self._definitions.newer_than(self._generation)
        if found is None:
            return False
        generation, registry = found
        swapped = self.offer(registry, generation)
        if swapped:
            log.info("feature registry loaded", extra={"feature.registry_generation": generation})
        return swapped

    async def run(self, interval_s: float = DEFAULT_REFRESH_SECONDS) -> None:
        """``refresh`` every ``interval_s`` seconds until ``stop()``; a failed refresh is logged and
        retried at the next interval (the registry served stays as it was). Never raises."""
        await self._periodic.run(interval_s)

    async def stop(self) -> None:
        """Make ``run()`` return."""
        self._periodic.stop()
