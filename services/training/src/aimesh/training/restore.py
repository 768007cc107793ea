"""Start-up restore: load into Triton every model that backs a registry alias or a traffic policy's canary
or shadow.

Triton runs with explicit model control and starts with nothing loaded, so after a restart the
versions the aliases point at (``credit_risk@champion`` ...) are on disk in the model repository but not
served. ``AliasedModelLoader`` runs as a ``ServiceRuntime`` part: for each distinct Triton model behind
an alias (all models, all aliases) or a current traffic policy's canary / shadow version it asks Triton
whether those versions are READY and loads the model when one is not (Triton's config then serves the
newest versions of it). It retries with
backoff while Triton (or the database) is unreachable, never raises, and stops on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from aimesh.core.errors import Unavailable
from aimesh.training.registry import Registry
from aimesh.training.triton import ModelServer

log = logging.getLogger(__name__)

RETRYABLE = (Unavailable, SQLAlchemyError, OSError)
"""Failures that pass: Triton or the database unreachable (or Triton refusing a load)."""


class AliasedModelLoader:
    """Loads the Triton models behind ``registry``'s aliases from ``repository`` into ``server``, once per start.

    ``done`` is set when every aliased model has been handled (loaded, already READY, or reported missing).
    """

    def __init__(
        self,
        registry: Registry,
        server: ModelServer,
        repository: Path,
        *,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._registry = registry
        self._server = server
        self._repository = repository
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._stopped = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self) -> None:
        """Restore in the background until done, then wait for ``stop()``; ``stop()`` cancels a restore in
        progress. Never raises."""
        work = asyncio.create_task(self.restore(), name="aliased-model-restore")
        try:
            await self._stopped.wait()
        finally:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work

    async def stop(self) -> None:
        """Make ``run()`` return."""
        self._stopped.set()

    async def restore(self) -> None:
        """Repeat passes (backoff doubling up to ``max_backoff_s``) until none fails, then set ``done``.

        Blocks for as long as Triton stays unreachable; logs each failed attempt; never raises except
        ``CancelledError``.
        """
        backoff = self._first_backoff_s
        attempt = 1
        try:
            while failed := await self._pass():
                log.warning(
                    "could not restore aliased Triton models; retrying",
                    extra={"attempt": attempt, "failed": sorted(failed), "retry_in_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                attempt += 1
        except Exception:
            log.exception("restoring aliased Triton models failed; giving up")
            return
        self.done.set()

    async def _pass(self) -> dict[str, str]:
        """One pass over every aliased Triton model; returns {model (or "registry"): error} of what failed."""
        try:
            serving = await self._registry.aliased_serving() + await self._registry.policy_serving()
        except RETRYABLE as exc:
            return {"registry": str(exc)}
        versions: dict[str, set[int]] = defaultdict(set)
        for s in serving:
            versions[s.triton_model_name].add(s.triton_model_version)
        failed: dict[str, str] = {}
        for name, numbers in sorted(versions.items()):
            try:
                await self._ensure_loaded(name, sorted(numbers))
            except RETRYABLE as exc:
                failed[name] = str(exc)
        return failed

    async def _ensure_loaded(self, name: str, numbers: list[int]) -> None:
        """Load ``name`` unless every aliased version of it is READY; raises ``Unavailable`` from Triton."""
        present = []
        for number in numbers:
            path = self._repository / name / str(number) / "model.pt"
            if path.is_file():
                present.append(number)
            else:
                log.error(
                    "aliased model files are missing from the Triton repository; not loading them",
                    extra={"triton.model": name, "version": number, "path": str(path)},
                )
        if not present:
            return
        if all([await self._server.is_ready(name, n) for n in present]):
            return
        load_s = await self._server.load(name)
        not_ready = [n for n in present if not await self._server.is_ready(name, n)]
        if not_ready:
            log.error(
                "aliased versions are not READY after loading (outside Triton's version policy?)",
                extra={"triton.model": name, "versions": not_ready},
            )
        log.info(
            "aliased model loaded in Triton",
            extra={"triton.model": name, "versions": [n for n in present if n not in not_ready], "load_s": load_s},
        )
