"""DriftMonitor.run survives a failed round of any kind (an alert Kafka did not acknowledge during a broker
outage ended the drift part, and with it the monitor process)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaTimeoutError

from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.errors import Unavailable
from aimesh.core.model_catalog import ModelCatalog
from aimesh.monitor.drift_monitor import DriftMonitor, DriftPolicy


class FailingRounds(DriftMonitor):
    """A DriftMonitor whose rounds raise ``errors`` in turn, then succeed; counts the rounds."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(ModelCatalog(), cast(Any, None), cast(Any, None), DriftPolicy(interval_s=0.01))
        self.errors = errors
        self.rounds = 0

    async def evaluate_all(self) -> list[monitor_pb2.DriftReport]:
        self.rounds += 1
        if self.errors:
            raise self.errors.pop(0)
        return []


async def test_a_round_failing_with_any_error_is_logged_and_the_next_round_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = FailingRounds([KafkaTimeoutError(), Unavailable("elasticsearch down"), RuntimeError("odd")])
    task = asyncio.create_task(monitor.run())
    for _ in range(200):
        if monitor.rounds >= 4:
            break
        await asyncio.sleep(0.01)
    await monitor.stop()
    await asyncio.wait_for(task, 2)
    assert monitor.rounds >= 4, "every failed round was followed by another"
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drift evaluation failed")]
    assert len(warnings) == 3 and "KafkaTimeoutError" in warnings[0] and "elasticsearch down" in warnings[1]
    assert not any(r.exc_info for r in caplog.records)
