"""The model reconciler: keep every routed model version loaded in Triton, and say whether one is.

Triton runs in explicit model-control mode: it serves a model only after a load request, so a Triton
that restarted (or lost a model any other way) serves nothing until someone asks again. The
reconciler is that someone. Every ``interval_s`` seconds, and at once when ``notify()`` says the model
catalog changed, one pass:

1. lists the routed versions (``routing.routed_versions``: every Triton model version an alias points
   at, the default alias's champion among them);
2. asks Triton whether each is ready (``is_model_ready``, bounded by ``check_timeout_s``);
3. for each Triton model with a routed version that is NOT ready, and not waiting out a backoff,
   calls ``load_model`` (bounded by ``load_timeout_s``; models load concurrently), then checks the
   routed versions again. A failed load, or a load after which a routed version is still not ready
   (e.g. the version fell out of the model config's version policy), backs that model off: the next
   attempt waits ``interval_s``, doubling per consecutive failure up to ``backoff_max_s``; a model
   found ready resets its backoff. While Triton does not answer at all nothing is loaded and nothing
   backs off, and passes come every ``unreachable_interval_s`` (0.5 s) instead of ``interval_s``, so
   the load starts within about half a second of Triton answering again (plus the channel's reconnect,
   at most 1 s). The first pass that finds Triton answering after a pass that found it silent (a
   restart) clears every backoff: a model that failed to load before the restart is loaded at once,
   not after its backoff. A load that fails because Triton went away during it (the probe after it
   finds Triton silent) is not a failure and backs nothing off.

A pass never raises; its outcome is kept (``last_pass``) and exported: the counters
``aimesh_inference_model_loads_total`` / ``aimesh_inference_model_load_failures_total`` (by Triton
model) and the gauge ``aimesh_inference_routed_versions_unloaded``.

``check_ready`` is the service's ``models`` readiness check: it asks Triton afresh (it does not load)
and passes when at least one routed version is ready; otherwise it raises ``Unavailable`` naming every
routed version that is not loaded and why (the last load error when there was one). With no routed
version at all it passes when ``ready_without_routes`` is set and Triton is live (a fresh mesh before
its first model), and fails otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter, Gauge

from aimesh.core.errors import Unavailable
from aimesh.core.events import Event
from aimesh.core.model_catalog import ModelCatalog
from aimesh.inference.routing import RoutedVersion, routed_versions

log = logging.getLogger(__name__)

MODEL_LOADS = Counter(
    "aimesh_inference_model_loads_total", "Triton load requests the model reconciler made that succeeded", ["model"]
)
MODEL_LOAD_FAILURES = Counter(
    "aimesh_inference_model_load_failures_total",
    "Triton load requests that failed (or left a routed version unready); retried with backoff",
    ["model"],
)
ROUTED_UNLOADED = Gauge(
    "aimesh_inference_routed_versions_unloaded", "Routed model versions not ready in Triton at the last pass"
)


class ModelControl(Protocol):
    """What the reconciler needs of Triton (``TritonRunner`` implements it)."""

    async def is_model_ready(self, model: str, version: int, *, timeout_s: float) -> bool:
        """Whether ``model`` version ``version`` (0: latest) is served now; raises when Triton does not answer."""
        ...

    async def load_model(self, model: str, *, timeout_s: float) -> None:
        """Load ``model`` from the repository; raises with the reason when it fails."""
        ...

    async def check_live(self) -> None:
        """Raise ``Unavailable`` unless the server is live."""
        ...


@dataclass
class _Backoff:
    failures: int = 0
    next_attempt: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class PassResult:
    """What one reconciliation pass saw and did."""

    unready: dict[RoutedVersion, str] = field(default_factory=dict)
    """Routed versions not ready after the pass, with the reason."""
    ready: tuple[RoutedVersion, ...] = ()
    loaded: tuple[str, ...] = ()
    """Triton models loaded by this pass."""
    failed: tuple[str, ...] = ()
    """Triton models whose load failed in this pass."""


class ModelReconciler:
    """Keeps the catalog's routed versions loaded in ``control`` (see the module doc); one event loop."""

    def __init__(
        self,
        catalog: ModelCatalog,
        control: ModelControl,
        *,
        interval_s: float = 2.0,
        backoff_max_s: float = 30.0,
        load_timeout_s: float = 120.0,
        check_timeout_s: float = 1.5,
        ready_without_routes: bool = True,
        unreachable_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or backoff_max_s < interval_s:
            raise ValueError(f"need 0 < interval_s <= backoff_max_s, got {interval_s} and {backoff_max_s}")
        if unreachable_interval_s <= 0:
            raise ValueError(f"need 0 < unreachable_interval_s, got {unreachable_interval_s}")
        self.catalog = catalog
        self.control = control
        self.interval_s = interval_s
        self.backoff_max_s = backoff_max_s
        self.load_timeout_s = load_timeout_s
        self.check_timeout_s = check_timeout_s
        self.ready_without_routes = ready_without_routes
        self.unreachable_interval_s = min(unreachable_interval_s, interval_s)
        self._clock = clock
        self._silent = False
        """The last pass found Triton silent (every routed version unreachable)."""
        self._backoff: dict[str, _Backoff] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.last_pass = PassResult()

    async def handle(self, event: Event) -> None:
        """The routing consumer's handler: apply ``event`` to the catalog (``ModelCatalog.handle``), then ``notify``."""
        await self.catalog.handle(event)
        self.notify()

    def notify(self) -> None:
        """The catalog changed: run a pass now (or right after the running one)."""
        self._wake.set()

    async def run(self) -> None:
        """Pass, then wait ``interval_s`` (``unreachable_interval_s`` while Triton is silent) or a
        ``notify()``, until ``stop()``; never raises."""
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("model reconciliation pass failed")
            wait = self.unreachable_interval_s if self._silent else self.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def stop(self) -> None:
        """Make ``run()`` return (now, or when the running pass finishes)."""
        self._stopping.set()
        self._wake.set()

    async def reconcile(self) -> PassResult:
        """One pass (see the module doc); records and returns its outcome."""
        routed = routed_versions(self.catalog)
        status = await self._probe(routed)
        now = self._clock()
        silent = _silent(status)
        if self._silent and not silent and self._backoff:
            log.info("Triton answers again: loading %s without waiting out their backoff", sorted(self._backoff))
            self._backoff.clear()
        self._silent = silent
        to_load = sorted(
            {
                rv.triton_model
                for rv, reason in status.items()
                if reason is not None and not reason.startswith(_UNREACHABLE) and self._due(rv.triton_model, now)
            }
        )
        loaded: list[str] = []
        failed: list[str] = []
        if to_load:
            errors = await asyncio.gather(*(self._load(name) for name in to_load))
            status = await self._probe(routed)
            if _silent(status):
                self._silent = True  # Triton went away during the loads: nothing failed, the next pass retries
            else:
                loaded, failed = self._account(routed, status, dict(zip(to_load, errors, strict=True)), now)
        unready_models = {rv.triton_model for rv, reason in status.items() if reason is not None}
        self._backoff = {name: b for name, b in self._backoff.items() if name in unready_models}
        unready = {rv: self._reason(rv, reason) for rv, reason in status.items() if reason is not None}
        ROUTED_UNLOADED.set(len(unready))
        self.last_pass = PassResult(
            unready=unready,
            ready=tuple(rv for rv, reason in status.items() if reason is None),
            loaded=tuple(loaded),
            failed=tuple(failed),
        )
        return self.last_pass

    async def check_ready(self) -> None:
        """The ``models`` readiness check (see the module doc); raises ``Unavailable`` naming what is missing."""
        routed = routed_versions(self.catalog)
        if not routed:
            if not self.ready_without_routes:
                raise Unavailable("no model version is routed yet (no alias on the registry topic)")
            await self.control.check_live()
            return
        status = await self._probe(routed)
        if any(reason is None for reason in status.values()):
            return
        raise Unavailable(
            "; ".join(
                f"{rv.describe()} not loaded in Triton: {self._reason(rv, reason)}" for rv, reason in status.items()
            )
        )

    async def _probe(self, routed: list[RoutedVersion]) -> dict[RoutedVersion, str | None]:
        """Each routed version -> None when ready, else why not (``_UNREACHABLE...`` when Triton is silent)."""

        async def one(rv: RoutedVersion) -> str | None:
            try:
                ready = await self.control.is_model_ready(
                    rv.triton_model, rv.triton_version, timeout_s=self.check_timeout_s
                )
            except Exception as exc:
                return f"{_UNREACHABLE}{exc}"
            return None if ready else "not ready"

        answers = await asyncio.gather(*(one(rv) for rv in routed))
        return dict(zip(routed, answers, strict=True))

    def _account(
        self,
        routed: list[RoutedVersion],
        status: dict[RoutedVersion, str | None],
        loads: dict[str, str | None],
        now: float,
    ) -> tuple[list[str], list[str]]:
        """Count each of this pass's ``loads`` (Triton model -> its error) as loaded or failed (backed off),
        by what Triton says now (``status``); returns (loaded, failed)."""
        loaded: list[str] = []
        failed: list[str] = []
        for name, load_error in loads.items():
            still = [rv.describe() for rv in routed if rv.triton_model == name and status[rv] is not None]
            error = load_error
            if error is None and still:
                error = f"loaded, but still not ready: {', '.join(still)} (outside the model's version policy?)"
            if error is None:
                MODEL_LOADS.labels(name).inc()
                loaded.append(name)
                log.info("loaded model %r into Triton", name)
            else:
                MODEL_LOAD_FAILURES.labels(name).inc()
                failed.append(name)
                self._failed(name, error, now)
        return loaded, failed

    def _reason(self, rv: RoutedVersion, reason: str | None) -> str:
        if reason is None:
            return "ready"
        backoff = self._backoff.get(rv.triton_model)
        if reason == "not ready" and backoff is not None and backoff.last_error:
            return f"not ready; last load failed ({backoff.failures}x): {backoff.last_error}"
        return reason

    def _due(self, name: str, now: float) -> bool:
        backoff = self._backoff.get(name)
        return backoff is None or now >= backoff.next_attempt

    async def _load(self, name: str) -> str | None:
        try:
            await self.control.load_model(name, timeout_s=self.load_timeout_s)
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    def _failed(self, name: str, error: str, now: float) -> None:
        backoff = self._backoff.setdefault(name, _Backoff())
        backoff.failures += 1
        delay = min(self.interval_s * 2 ** (backoff.failures - 1), self.backoff_max_s)
        backoff.next_attempt = now + delay
        backoff.last_error = error
        log.warning(
            "could not load model %r into Triton (attempt %d, next in %.1fs): %s", name, backoff.failures, delay, error
        )


_UNREACHABLE = "Triton did not answer: "


def _silent(status: dict[RoutedVersion, str | None]) -> bool:
    """Whether Triton answered none of the probes (and there was at least one)."""
    return bool(status) and all(reason is not None and reason.startswith(_UNREACHABLE) for reason in status.values())
