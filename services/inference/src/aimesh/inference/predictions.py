"""Publishing Prediction events without delaying the Score response.

``PredictionPublisher.submit`` hands the event to a background delivery task and returns at once,
unless ``max_in_flight`` events already await Kafka's acknowledgement: then it waits for room
(back-pressure instead of unbounded memory). A failed send is retried once; a second failure is
logged with the event id and counted (``aimesh_inference_predictions_failed_total``). ``drain`` waits
for every pending acknowledgement (called on shutdown, before the producer closes).
"""

from __future__ import annotations

import asyncio
import logging

from aimesh.api.inference.v1 import events_pb2
from aimesh.core.bus import EventSender
from aimesh.inference import metrics

log = logging.getLogger(__name__)


class PredictionPublisher:
    """Background, acknowledged delivery of Prediction events (see the module doc)."""

    def __init__(self, producer: EventSender, topic: str, *, max_in_flight: int = 10_000) -> None:
        self._producer = producer
        self.topic = topic
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.published = 0
        self.failed = 0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, prediction: events_pb2.Prediction, key: str) -> None:
        """Start delivering ``prediction`` (event id = ``prediction.event_id``); waits only when full."""
        await self._slots.acquire()
        task = asyncio.create_task(self._deliver(prediction, key), name=f"prediction:{prediction.event_id}")
        self._tasks.add(task)
        metrics.PREDICTIONS_IN_FLIGHT.set(len(self._tasks))
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.remove(task)  # added in submit, finished once
        self._slots.release()
        metrics.PREDICTIONS_IN_FLIGHT.set(len(self._tasks))

    async def _deliver(self, prediction: events_pb2.Prediction, key: str) -> None:
        for attempt in (1, 2):
            try:
                ack = await self._producer.send_event(self.topic, prediction, key=key, event_id=prediction.event_id)
                await ack
            except Exception as exc:
                if attempt == 1:
                    log.warning(
                        "prediction send failed, retrying once: %s", exc, extra={"event.id": prediction.event_id}
                    )
                    continue
                self.failed += 1
                metrics.PREDICTIONS_FAILED.inc()
                log.error(
                    "prediction event lost after retry: %s",
                    exc,
                    extra={"event.id": prediction.event_id, "request.id": prediction.request_id},
                )
                return
            self.published += 1
            metrics.PREDICTIONS_PUBLISHED.inc()
            return

    async def drain(self, within_s: float | None = None) -> int:
        """Wait up to ``within_s`` seconds for pending deliveries; returns how many are still pending."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within_s)
        return len(self._tasks)
