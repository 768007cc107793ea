"""A background refresh loop: call something every N seconds until stopped, surviving its failures.

Used by the parts that keep a local copy of shared state fresh (ingest's source catalog, the feature
service's registry), so they all behave the same: the first call comes one interval after start (the
owner loads before serving), a failing call is logged with the traceback and retried at the next
interval, and ``stop`` ends the loop at once, even in the middle of a wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class PeriodicRefresh:
    """Runs ``refresh`` every ``interval_s`` seconds in ``run()`` until ``stop()``.

    ``describe_failure`` returns the log message of a failed call (evaluated then, so it can name the
    state kept); ``logger`` is the owner's.
    """

    def __init__(
        self, refresh: Callable[[], Awaitable[object]], describe_failure: Callable[[], str], logger: logging.Logger
    ) -> None:
        self._refresh = refresh
        self._describe_failure = describe_failure
        self._logger = logger
        self._stopping = asyncio.Event()

    async def run(self, interval_s: float) -> None:
        """Call ``refresh`` every ``interval_s`` seconds until ``stop()``; never raises."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval_s)
            if self._stopping.is_set():
                return
            try:
                await self._refresh()
            except Exception:
                self._logger.exception(self._describe_failure())

    def stop(self) -> None:
        """Make ``run()`` return (now, or when the running call finishes)."""
        self._stopping.set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()
