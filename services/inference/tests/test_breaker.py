"""CircuitBreaker's state machine on a fake clock: opens after N consecutive failures, skips the
dependency for the cool-down, lets one probe through, closes on its success, reopens on its failure."""

from __future__ import annotations

import asyncio

import pytest

from aimesh.core.errors import DeadlineExceeded, InvalidArgument, Unavailable
from aimesh.inference import metrics
from aimesh.inference.breaker import BreakerState, CircuitBreaker, CircuitOpen, ModelBreakers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """Fails with ``error`` while it is set; counts the calls it receives."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return "ok"


def transitions(dependency: str, state: str) -> float:
    return metrics.BREAKER_TRANSITIONS.labels(dependency, state)._value.get()


async def test_opens_after_n_failures_skips_for_the_cool_down_then_probes_once_and_closes() -> None:
    clock, dep = Clock(), Dependency()
    breaker = CircuitBreaker("dep-a", failures=3, cooldown_s=1.0, clock=clock)
    dep.error = Unavailable("down")
    for _ in range(2):
        with pytest.raises(Unavailable, match="down"):
            await breaker.call(dep)
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(DeadlineExceeded):
        dep.error = DeadlineExceeded("slow")
        await breaker.call(dep)
    assert breaker.state is BreakerState.OPEN and dep.calls == 3
    assert metrics.BREAKER_STATE.labels("dep-a")._value.get() == 2
    with pytest.raises(CircuitOpen, match="circuit open: dep-a failed 3 times in a row"):
        await breaker.call(dep)
    assert dep.calls == 3, "an open breaker does not call the dependency"
    clock.now += 0.99
    with pytest.raises(CircuitOpen):
        await breaker.call(dep)
    clock.now += 0.01
    assert breaker.state is BreakerState.HALF_OPEN
    dep.error = None
    assert await breaker.call(dep) == "ok"
    assert breaker.state is BreakerState.CLOSED and dep.calls == 4
    assert metrics.BREAKER_STATE.labels("dep-a")._value.get() == 0
    assert [transitions("dep-a", s) for s in ("open", "half_open", "closed")] == [1, 1, 1]


async def test_a_failed_probe_reopens_for_another_cool_down() -> None:
    clock, dep = Clock(), Dependency()
    breaker = CircuitBreaker("dep-b", failures=1, cooldown_s=1.0, clock=clock)
    dep.error = Unavailable("down")
    with pytest.raises(Unavailable):
        await breaker.call(dep)
    clock.now += 1.0
    with pytest.raises(Unavailable, match="down"):
        await breaker.call(dep)
    assert breaker.state is BreakerState.OPEN and dep.calls == 2
    clock.now += 0.5
    with pytest.raises(CircuitOpen):
        await breaker.call(dep)
    assert dep.calls == 2


async def test_one_probe_at_a_time_and_a_cancelled_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep-c", failures=1, cooldown_s=1.0, clock=clock)
    breaker.failed()
    clock.now += 1.0
    gate = asyncio.Event()

    async def hangs() -> str:
        await gate.wait()
        return "late"

    probe = asyncio.create_task(breaker.call(hangs))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        await breaker.call(Dependency())
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert await breaker.call(Dependency()) == "ok"
    assert breaker.state is BreakerState.CLOSED


async def test_an_answered_error_is_a_success_and_restarts_the_count() -> None:
    breaker = CircuitBreaker("dep-d", failures=2, cooldown_s=1.0, clock=Clock())
    dep = Dependency()
    dep.error = Unavailable("down")
    with pytest.raises(Unavailable):
        await breaker.call(dep)
    dep.error = InvalidArgument("bad row")
    with pytest.raises(InvalidArgument):
        await breaker.call(dep)
    dep.error = Unavailable("down")
    with pytest.raises(Unavailable):
        await breaker.call(dep)
    assert breaker.state is BreakerState.CLOSED, "the failures were not consecutive"


async def test_model_breakers_keep_one_breaker_per_model_version_with_its_settings() -> None:
    clock = Clock()
    breakers = ModelBreakers("Triton", failures=2, cooldown_s=1.0, clock=clock)
    down, up = Dependency(), Dependency()
    down.error = Unavailable("model not loaded")
    for _ in range(2):
        with pytest.raises(Unavailable, match="not loaded"):
            await breakers.for_model("risk", 2).call(down)
    assert breakers.for_model("risk", 2).state is BreakerState.OPEN
    with pytest.raises(CircuitOpen, match="circuit open: Triton model 'risk' version 2 failed 2 times in a row"):
        await breakers.for_model("risk", 2).call(down)
    assert await breakers.for_model("risk", 1).call(up) == "ok", "another version of the model has its own breaker"
    assert await breakers.for_model("churn", 2).call(up) == "ok", "another model has its own breaker"
    assert breakers.for_model("risk", 2) is breakers.for_model("risk", 2)
    assert set(breakers.breakers) == {("risk", 2), ("risk", 1), ("churn", 2)}
    assert (down.calls, up.calls) == (2, 2)
    clock.now += 1.0
    assert breakers.for_model("risk", 2).state is BreakerState.HALF_OPEN


def test_model_breakers_refuse_settings_no_breaker_could_have() -> None:
    with pytest.raises(ValueError, match="failures must be >= 1"):
        ModelBreakers("Triton", failures=0)
    with pytest.raises(ValueError, match="cooldown_s > 0"):
        ModelBreakers("Triton", cooldown_s=0.0)
