"""PeriodicRefresh: calls every interval, survives failures with a log line, stops mid-wait."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from aimesh.core.periodic import PeriodicRefresh


async def test_calls_again_after_a_failure_and_stops_at_once(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    async def refresh() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RuntimeError("database gone")

    periodic = PeriodicRefresh(refresh, lambda: f"refresh failed after {len(calls)} calls", logging.getLogger("t"))
    task = asyncio.create_task(periodic.run(0.02))
    while len(calls) < 4:
        await asyncio.sleep(0.01)
    assert not task.done()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == ["refresh failed after 2 calls"]
    assert caplog.records[0].exc_info is not None
    slow = PeriodicRefresh(refresh, str, logging.getLogger("t"))
    slow_task = asyncio.create_task(slow.run(3600))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    periodic.stop()
    slow.stop()
    await asyncio.wait_for(asyncio.gather(task, slow_task), timeout=1)
    assert time.monotonic() - started < 0.5 and periodic.stopped
