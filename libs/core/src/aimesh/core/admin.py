"""The admin HTTP app every service serves (FastAPI): ``/healthz``, ``/readyz``, ``/metrics``.

- ``/healthz`` (liveness) answers 200 while no registered loop is wedged and 503 otherwise, with
  ``stalled`` (the wedged loops' names) and ``reasons`` (name -> why). A check answers None while its
  loop moves; a consumer's (``ServiceRuntime.add_consumer``) fails only when the consumer is wedged
  while the readiness checks have found every dependency reachable for the whole stall limit, never
  because one is (or just was) down. The body names the dependencies the last readiness checks found
  down (``dependencies_down``).
- ``/readyz`` (readiness) runs every dependency check (Kafka, the database, Triton ...) with a timeout
  and answers 503 naming each failed readiness check and why (``failed``: name -> reason). Readiness
  means the service can do its main job now; a dependency the main job goes on without for a while
  (Kafka for feature serving, training runs and inference) is a *degraded* check: run and reported
  alike (``degraded``: name -> reason, still 200) and counted as down for liveness, never a 503.
- ``/metrics`` is the Prometheus exposition of the process registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

LivenessCheck = Callable[[], str | None]
"""Answers None while its loop moves, else why it is wedged; cheap, synchronous, never blocks."""
ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class Probes:
    """Named liveness checks (cheap, synchronous) and readiness checks (async, raise when not ready).

    ``last_failed`` holds the result of the latest ``check_ready`` (None before the first) and
    ``reachable_since`` since when every check has passed, so cheap synchronous code (the liveness
    checks) can tell whether a dependency is down, and for how long all have been reachable.
    """

    liveness: dict[str, LivenessCheck] = field(default_factory=dict)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    degraded: dict[str, ReadinessCheck] = field(default_factory=dict)
    """Checks of dependencies the main job does without for a while: run with the readiness checks,
    in ``last_failed`` (so liveness knows the dependency is down) but never in what ``check_ready`` returns."""
    readiness_timeout_s: float = 2.0
    last_degraded: dict[str, str] | None = None
    """The ``degraded`` checks that failed at the latest ``check_ready`` (None before the first)."""
    last_failed: dict[str, str] | None = None
    reachable_since: float | None = field(default_factory=time.monotonic)
    """Monotonic time of the first passing ``check_ready`` after the last failing one (creation time while
    none has failed); None while the latest one failed."""

    def wedged(self) -> dict[str, str]:
        """The liveness checks that fail, by name, with why; empty while every loop moves."""
        reasons = {name: check() for name, check in self.liveness.items()}
        return {name: reason for name, reason in reasons.items() if reason is not None}

    def dependencies_down(self) -> dict[str, str]:
        """The dependencies the latest readiness checks found down (empty before the first check)."""
        return dict(self.last_failed or {})

    def reachable_for(self, now: float | None = None) -> float | None:
        """Seconds every dependency has been reachable without a failed readiness check in between
        (since creation while none has failed); None while the latest checks found one down."""
        if self.reachable_since is None:
            return None
        return max((time.monotonic() if now is None else now) - self.reachable_since, 0.0)

    async def check_ready(self) -> dict[str, str]:
        """Failed readiness checks by name, with the reason; empty when ready. Runs the ``degraded`` checks
        too: ``last_failed`` remembers every failed check of both kinds, ``last_degraded`` the degraded ones."""

        async def one(check: ReadinessCheck) -> str | None:
            try:
                await asyncio.wait_for(check(), timeout=self.readiness_timeout_s)
            except TimeoutError:
                return f"no answer within {self.readiness_timeout_s}s"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return None

        checks = {**self.degraded, **self.readiness}
        names = list(checks)
        results = await asyncio.gather(*(one(checks[n]) for n in names))
        failed = {n: r for n, r in zip(names, results, strict=True) if r is not None}
        self.last_failed = failed
        self.last_degraded = {n: r for n, r in failed.items() if n not in self.readiness}
        if failed:
            self.reachable_since = None
        elif self.reachable_since is None:
            self.reachable_since = time.monotonic()
        return {n: r for n, r in failed.items() if n in self.readiness}


def create_admin_app(service: str, version: str, probes: Probes) -> FastAPI:
    """The admin app for ``service``; the probes are read on every request."""
    app = FastAPI(title=f"aimesh {service} admin", version=version)

    @app.get("/healthz")
    async def healthz() -> Response:
        wedged = probes.wedged()
        body: dict[str, Any] = {"status": "ok" if not wedged else "stalled", "service": service, "version": version}
        if wedged:
            body["stalled"] = list(wedged)
            body["reasons"] = wedged
        if down := probes.dependencies_down():
            body["dependencies_down"] = down
        return JSONResponse(body, status_code=200 if not wedged else 503)

    @app.get("/readyz")
    async def readyz() -> Response:
        failed = await probes.check_ready()
        body: dict[str, Any] = {"status": "ready" if not failed else "unavailable", "service": service}
        if failed:
            body["failed"] = failed
        if probes.last_degraded:
            body["degraded"] = probes.last_degraded
        return JSONResponse(body, status_code=200 if not failed else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the service runner owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    """Serves the admin app with uvicorn inside the service's event loop."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
        self._server = _EmbeddedUvicorn(config)

    async def serve(self) -> None:
        await self._server.serve()

    async def stop(self) -> None:
        self._server.should_exit = True
