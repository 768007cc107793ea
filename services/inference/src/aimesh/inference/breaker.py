"""Circuit breakers of the scorer: one for the feature service, one per Triton model version (``ModelBreakers``).

``CircuitBreaker.call`` runs one call to the dependency. The breaker is ``closed`` while calls succeed;
``failures`` consecutive failures (``Unavailable`` or ``DeadlineExceeded``: the dependency is down or too
slow) open it for ``cooldown_s``: calls then raise ``CircuitOpen`` (an ``Unavailable``: "circuit open:
<dependency> failed N times in a row") at once, without waiting on the dependency. After the cool-down
the next call is let through as a probe (``half_open``; the other calls meanwhile still get
``CircuitOpen``): its success closes the breaker, its failure opens it for another cool-down. Any other
outcome of a call (an answer, or an error the dependency answered with, such as ``InvalidArgument``)
is a success; a cancelled call is neither (a cancelled probe lets the next call probe).

``ModelBreakers`` keeps one breaker per model version of a dependency, each made on the version's first
call with the same settings: Triton failing one version (not loaded, say, for a call pinned to a version it does not
serve) opens that version's breaker only; the other models' calls and a previous-version fallback (its
own breaker) go on. A Triton that is down opens each version's breaker after that version's own
``failures`` calls.

State and transitions are metrics (``aimesh_inference_breaker_state{dependency}``: 0 closed, 1 half-open,
2 open; ``aimesh_inference_breaker_transitions_total{dependency,state}``; the breakers of a
``ModelBreakers`` are named ``<dependency> model '<name>' version <n>``). Not thread-safe: one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import TypeVar

from aimesh.core.errors import DeadlineExceeded, Unavailable
from aimesh.inference import metrics

T = TypeVar("T")


OUTAGE = (Unavailable, DeadlineExceeded)
"""The errors of a dependency that is down or too slow: the ones a breaker counts and a fallback answers for."""


def outage_cause(exc: Exception) -> str:
    """The ``cause`` label of an outage: ``deadline`` (the dependency did not answer in time) or
    ``unavailable`` (it failed, or its circuit is open)."""
    return "deadline" if isinstance(exc, DeadlineExceeded) else "unavailable"


class BreakerState(Enum):
    """A breaker's state; the value is its gauge reading."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpen(Unavailable):
    """The dependency's breaker is open: the call was not made."""


def _check_settings(failures: int, cooldown_s: float) -> None:
    if failures < 1 or cooldown_s <= 0:
        raise ValueError(f"failures must be >= 1 and cooldown_s > 0, got {failures} and {cooldown_s}")


class CircuitBreaker:
    """Counts a dependency's consecutive failures and stops calling it for a cool-down (see the module doc)."""

    def __init__(
        self,
        dependency: str,
        *,
        failures: int = 5,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_settings(failures, cooldown_s)
        self.dependency = dependency
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False
        metrics.BREAKER_STATE.labels(dependency).set(BreakerState.CLOSED.value)

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down has passed reads ``half_open``)."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return self._state

    def _move(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            metrics.BREAKER_STATE.labels(self.dependency).set(state.value)
            metrics.BREAKER_TRANSITIONS.labels(self.dependency, state.name.lower()).inc()

    def admit(self) -> None:
        """Let a call through, or raise ``CircuitOpen`` (open, or half-open with its probe under way)."""
        if self.state is BreakerState.CLOSED:
            return
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._move(BreakerState.HALF_OPEN)
            self._probing = True
            return
        raise CircuitOpen(f"circuit open: {self.dependency} failed {self._consecutive} times in a row")

    def succeeded(self) -> None:
        """Record an answer: the count restarts and the breaker closes."""
        self._consecutive = 0
        self._probing = False
        self._move(BreakerState.CLOSED)

    def failed(self) -> None:
        """Record a failure: a failed probe, or the ``failures``-th in a row, opens the breaker."""
        self._consecutive += 1
        if self._probing or self._consecutive >= self.failures:
            self._probing = False
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)

    def released(self) -> None:
        """Record a call that ended without a verdict (cancelled): a probe slot is freed."""
        self._probing = False

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` when admitted (``CircuitOpen`` otherwise), its outcome recorded; raises what it raises."""
        self.admit()
        try:
            result = await call()
        except (Unavailable, DeadlineExceeded):
            self.failed()
            raise
        except asyncio.CancelledError:
            self.released()
            raise
        except Exception:
            self.succeeded()
            raise
        self.succeeded()
        return result


class ModelBreakers:
    """One ``CircuitBreaker`` per model version of ``dependency``, each made on first use (see the module doc)."""

    def __init__(
        self,
        dependency: str,
        *,
        failures: int = 5,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_settings(failures, cooldown_s)
        self.dependency = dependency
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._breakers: dict[tuple[str, int], CircuitBreaker] = {}

    def for_model(self, model: str, version: int) -> CircuitBreaker:
        """The breaker of the calls for ``model`` at ``version``."""
        breaker = self._breakers.get((model, version))
        if breaker is None:
            breaker = self._breakers[(model, version)] = CircuitBreaker(
                f"{self.dependency} model {model!r} version {version}",
                failures=self.failures,
                cooldown_s=self.cooldown_s,
                clock=self._clock,
            )
        return breaker

    @property
    def breakers(self) -> Mapping[tuple[str, int], CircuitBreaker]:
        """The breakers made so far, by (model, version) (read-only use)."""
        return self._breakers


async def guarded(breaker: CircuitBreaker, time_left: float | None, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` through ``breaker``, abandoned after ``time_left`` seconds (None: never) with
    ``DeadlineExceeded`` naming the dependency (a failure to the breaker)."""

    async def bounded() -> T:
        if time_left is None:
            return await call()
        try:
            async with asyncio.timeout(time_left):
                return await call()
        except TimeoutError:
            raise DeadlineExceeded(f"{breaker.dependency} did not answer within {time_left:.3f} s") from None

    return await breaker.call(bounded)
