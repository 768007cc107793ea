"""kill -9 of each service in turn under steady load, restarted by the test as a supervisor would.

Each prints its counts and asserts the properties of ``tests.faults.harness``: 0 lost and 0 duplicated
effects (the killed service's unacknowledged work is redone, its acknowledged work is durable), the other
services untouched and healthy, Score OK within 10 s of inference being ready again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from aimesh.devstack.services import SERVICE_NAMES
from tests.faults.harness import run_scenario
from tests.faults.stack import FaultStack

pytestmark = pytest.mark.faults

RATE = float(os.environ.get("FAULTS_RATE", "120"))
SCORE_RATE = float(os.environ.get("FAULTS_SCORE_RATE", "12"))
SUPERVISOR_DELAY_S = 2.0
"""Between the kill and the restart (a supervisor's restart delay)."""


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_kill_9_and_restart(fault_stack: FaultStack, service: str) -> None:
    async def fault(mark: Callable[[str], None]) -> None:
        mark(f"down: kill -9 {service}")
        await asyncio.to_thread(fault_stack.kill, service)
        await asyncio.sleep(SUPERVISOR_DELAY_S)
        took = await asyncio.to_thread(fault_stack.restart, service)
        mark(f"back: {service} ready ({took:.0f}s to start)")

    report = asyncio.run(
        run_scenario(
            fault_stack,
            f"kill9-{service}",
            fault,
            rate=RATE,
            score_rate=SCORE_RATE,
            warmup_s=5,
            after_s=10,
            recover_s=10.0,
            down_service=service,
        )
    )
    report.assert_held()
