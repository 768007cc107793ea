"""In-memory doubles and helpers for the tests of services built on ``aimesh.core`` (never used at runtime).

- ``RecordingSender``: an ``aimesh.core.bus.EventSender`` that records each send and acknowledges it at
  once, or fails the acknowledgement on demand.
- ``run_until``: runs a real ``EventConsumer`` until a condition holds, then stops it (which commits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from google.protobuf.message import Message

from aimesh.core.bus import EventConsumer


class SentEvent(NamedTuple):
    """One ``send_event`` call that ``RecordingSender`` acknowledged."""

    topic: str
    message: Message
    key: str | bytes | None
    event_id: str | None


class RecordingSender:
    """Records every acknowledged send in ``sent``, in call order.

    While ``fail`` is true, or for the next ``fail_times`` sends, the acknowledgement future fails with
    ``ConnectionError("broker down")`` instead and nothing is recorded (the call itself never raises).
    """

    def __init__(self, *, fail: bool = False, fail_times: int = 0) -> None:
        self.sent: list[SentEvent] = []
        self.fail = fail
        self.fail_times = fail_times

    async def send_event(
        self,
        topic: str,
        message: Message,
        *,
        key: str | bytes | None,
        event_id: str | None = None,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail or self.fail_times > 0:
            self.fail_times = max(self.fail_times - 1, 0)
            fut.set_exception(ConnectionError("broker down"))
        else:
            self.sent.append(SentEvent(topic, message, key, event_id))
            fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[SentEvent]:
        """The recorded sends to ``topic``."""
        return [s for s in self.sent if s.topic == topic]


async def run_until(consumer: EventConsumer, done: Callable[[], bool], within_s: float = 60.0) -> None:
    """Run ``consumer`` until ``done()`` holds, then stop it (it commits) and wait for it to return.

    Raises what ``consumer.run()`` raised if it ended early, and ``TimeoutError`` when ``done()`` still
    does not hold after ``within_s`` seconds (the consumer is stopped either way).
    """
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(within_s):
            while not done():
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await task
