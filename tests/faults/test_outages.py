"""Outages of the infrastructure under steady load: the broker (30 s and 120 s), Elasticsearch (30 s), Triton
(kill -9 and start). Each scenario prints its counts and asserts the properties of ``tests.faults.harness``:
0 lost and 0 duplicated effects, Score OK again within the stated time of the dependency's return with no
restart of any service, liveness never 503, inference's readiness truthful, no UNKNOWN/INTERNAL, no raw PAN.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from tests.faults.harness import run_scenario
from tests.faults.stack import FaultStack

pytestmark = pytest.mark.faults

RATE = float(os.environ.get("FAULTS_RATE", "120"))
SCORE_RATE = float(os.environ.get("FAULTS_SCORE_RATE", "12"))
SCORE_RECOVERY_S = 10.0
"""Score is OK again within this of the dependency being back (Triton: with the champion reloaded)."""


def outage(stop: Callable[[], None], start: Callable[[], None], down_s: float, what: str):  # type: ignore[no-untyped-def]
    async def fault(mark: Callable[[str], None]) -> None:
        mark(f"down: {what} stopped")
        await asyncio.to_thread(stop)
        await asyncio.sleep(down_s)
        mark(f"{what} starting")
        await asyncio.to_thread(start)
        mark(f"back: {what} ready")

    return fault


def test_broker_down_30s(fault_stack: FaultStack) -> None:
    fault = outage(fault_stack.stop_kafka, fault_stack.start_kafka, 30, "broker")
    report = asyncio.run(
        run_scenario(fault_stack, "broker30", fault, rate=RATE, score_rate=SCORE_RATE, recover_s=SCORE_RECOVERY_S)
    )
    report.assert_held()


def test_triton_killed_and_restarted(fault_stack: FaultStack) -> None:
    served = fault_stack.triton_ready_models()
    assert served, "Triton serves no model before the fault"
    killed = outage(fault_stack.kill_triton, fault_stack.start_triton, 2, "triton")

    async def fault(mark: Callable[[str], None]) -> None:
        await killed(mark)
        await asyncio.to_thread(fault_stack.wait_triton_models, served, 120)
        mark(f"back: {', '.join(sorted(served))} reloaded into Triton by inference")

    report = asyncio.run(
        run_scenario(
            fault_stack, "triton", fault, rate=RATE, score_rate=SCORE_RATE, recover_s=SCORE_RECOVERY_S, after_s=25
        )
    )
    report.assert_held()


def test_elasticsearch_down_30s(fault_stack: FaultStack) -> None:
    fault = outage(fault_stack.stop_elasticsearch, fault_stack.start_elasticsearch, 30, "elasticsearch")
    report = asyncio.run(
        run_scenario(fault_stack, "es30", fault, rate=RATE, score_rate=SCORE_RATE, recover_s=SCORE_RECOVERY_S)
    )
    report.assert_held()


def test_broker_down_120s(fault_stack: FaultStack) -> None:
    """Longer than every client timeout (request, delivery and session timeouts are all below 120 s)."""
    fault = outage(fault_stack.stop_kafka, fault_stack.start_kafka, 120, "broker")
    report = asyncio.run(
        run_scenario(fault_stack, "broker120", fault, rate=RATE, score_rate=SCORE_RATE, recover_s=SCORE_RECOVERY_S)
    )
    report.assert_held()
