"""Shadow scorings in the background: bounded, timed, counted, drained on shutdown; shared by Score,
ScoreBatch and Recommend.

``ShadowTasks.start`` runs one shadow scoring (of one mirrored request, or of a batch's mirrored rows) as
its own task, unless ``max_in_flight`` already run: then its requests are counted ``skipped`` and nothing
runs. The work gets ``timeout_s`` in all (its feature lookup, its model call and handing its Predictions
to the publisher) and returns the reasons of the requests it could not score (a refused row); every
mirrored request's outcome is counted in ``aimesh_inference_shadow_total{model,outcome}`` (``scored``,
``failed``, ``skipped``, ``cancelled``) and a failure is logged at WARNING without a stack trace. A
shadow never raises into the caller and never delays its answer. ``drain`` waits for the running ones and
cancels the rest. Shadow calls go through their own circuit breakers (``feature_breaker``,
``triton_breakers``, one per Triton model version), never the live calls' ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.model_catalog import ModelVersion
from aimesh.inference import metrics
from aimesh.inference.breaker import CircuitBreaker, ModelBreakers

log = logging.getLogger(__name__)

CALLS_SHARE = 0.9
"""Share of a shadow scoring's ``timeout_s`` its downstream calls get (the rest: handing its Predictions on)."""

ShadowWork = Callable[[], Awaitable[Sequence[str]]]
"""One shadow scoring: scores and submits, returns the reason of each request it could not score."""


class ShadowTasks:
    """The service's running shadow scorings (see the module doc)."""

    def __init__(
        self,
        *,
        max_in_flight: int = 64,
        timeout_s: float = 2.0,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 1.0,
    ) -> None:
        self._max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        """What one shadow scoring may take in all."""
        self.calls_s = timeout_s * CALLS_SHARE
        """The deadline its feature lookup and model call get: inside ``timeout_s``, so a dependency that is
        too slow fails the call (a failure its breaker counts) before the task's timeout cancels it."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.feature_breaker = CircuitBreaker(
            "the feature service (shadow calls)", failures=breaker_failures, cooldown_s=breaker_cooldown_s
        )
        """The breakers shadow calls go through: their own, so a failing shadow version never opens the
        ones live calls go through, and a dependency that is down or too slow stops the shadows at once."""
        self.triton_breakers = ModelBreakers(
            "Triton (shadow calls)", failures=breaker_failures, cooldown_s=breaker_cooldown_s
        )

    def start(self, target: ModelVersion, requests: int, work: ShadowWork, *, request_id: str) -> None:
        """Run ``work``, the shadow scoring of ``requests`` mirrored requests by ``target`` (``request_id``:
        the first one's, for the log), in the background, or count them skipped when ``max_in_flight``
        scorings already run."""
        if len(self._tasks) >= self._max_in_flight:
            metrics.SHADOW.labels(target.model_name, "skipped").inc(requests)
            return
        task = asyncio.create_task(self._run(target, requests, work, request_id), name=f"shadow:{request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, target: ModelVersion, requests: int, work: ShadowWork, request_id: str) -> None:
        """``work`` within ``timeout_s``, its outcome counted and a failure logged; never raises but
        ``CancelledError``."""
        model = target.model_name
        try:
            async with asyncio.timeout(self.timeout_s):
                refused = await work()
        except asyncio.CancelledError:
            metrics.SHADOW.labels(model, "cancelled").inc(requests)
            raise
        except Exception as exc:
            metrics.SHADOW.labels(model, "failed").inc(requests)
            reason = f"took longer than {self.timeout_s:g} s" if isinstance(exc, TimeoutError) else repr(exc)
            _log_failure(target, requests, requests, reason, request_id)
            return
        metrics.SHADOW.labels(model, "scored").inc(requests - len(refused))
        if refused:
            metrics.SHADOW.labels(model, "failed").inc(len(refused))
            _log_failure(target, len(refused), requests, refused[0], request_id)

    def breakers(self, route: int, live: tuple[CircuitBreaker, ModelBreakers]) -> tuple[CircuitBreaker, ModelBreakers]:
        """The (feature service, Triton models) breakers of a call on ``route``: the shadows' own for
        ``ROUTE_SHADOW``, else ``live``."""
        if route == inference_pb2.ROUTE_SHADOW:
            return self.feature_breaker, self.triton_breakers
        return live

    @property
    def in_flight(self) -> int:
        """Shadow scorings running now."""
        return len(self._tasks)

    async def drain(self, within_s: float | None = None) -> int:
        """Wait up to ``within_s`` seconds for running shadow scorings (their Predictions are then
        submitted), cancel the rest (counted ``cancelled``); returns how many were cancelled."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within_s)
        left = list(self._tasks)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
        return len(left)


def _log_failure(target: ModelVersion, failed: int, requests: int, reason: str, request_id: str) -> None:
    """One WARNING line (no stack trace) for ``failed`` of ``requests`` mirrored requests not scored."""
    log.warning(
        "shadow scoring by model %r v%d failed for %d of %d requests: %s",
        target.model_name,
        target.version,
        failed,
        requests,
        reason,
        extra={"request.id": request_id},
    )
