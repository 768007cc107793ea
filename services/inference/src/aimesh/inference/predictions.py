"""Publishing Prediction events without delaying the Score response, and without losing them.

``PredictionPublisher.submit`` hands the event to a background delivery task and returns at once,
unless ``max_in_flight`` events already await their outcome: then it waits for room (back-pressure
instead of unbounded memory). The service wires it to a ``aimesh.core.spool.SpoolingSender``: an event
Kafka does not acknowledge within ``spool_after_seconds`` (or whose send fails) is written to the local
spool and drained to Kafka when the broker is back (counted in
``aimesh_inference_predictions_spooled_total``); the producer under it heals itself after fatal or
sequence errors. An event is lost only when the spool rejects it (full, with the ``drop_newest``
policy), the spool file cannot be written, or the record itself is invalid (too large): then it is
logged with its event id and counted (``aimesh_inference_predictions_failed_total``). ``drain`` waits
for every pending delivery (called on shutdown, before the producer closes).

``submit`` answers what had become of the event when it returned (``PredictionDelivery``, copied into
the response): ``PENDING`` when the publisher does not wait for outcomes (``wait_for_delivery`` false,
the service's ``INFERENCE_PREDICTION_DELIVERY=background``); with ``wait_for_delivery`` it waits for the
outcome and answers ``ACKNOWLEDGED``, ``SPOOLED`` or ``FAILED`` (a response then names no event id:
``answered_event_id``).

Each delivery runs in a PRODUCER span ``<topic> publish`` of the ``Score`` that submitted it (the task
inherits the caller's context), ending with the outcome; the event's ``traceparent`` names that span, so
monitor's indexing, and the prediction document's ``trace.id``, continue the ``Score``'s trace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from opentelemetry.trace import SpanKind

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2, inference_pb2
from aimesh.core.bus import EventSender
from aimesh.core.spool import Delivery
from aimesh.core.tracing import tracer
from aimesh.inference import metrics

log = logging.getLogger(__name__)
_tracer = tracer(__name__)


def prediction_key(signature: signature_pb2.ModelSignature, entity_ids: Mapping[str, str], request_id: str) -> str:
    """The Kafka key of a request's Prediction: the id of the signature's ``key_entity`` (so one entity's
    predictions stay in order), or ``request_id`` when the signature names none or the request lacks it."""
    key = entity_ids.get(signature.key_entity) if signature.key_entity else None
    return key or request_id


class PredictionPublisher:
    """Background, acknowledged-or-spooled delivery of Prediction events (see the module doc)."""

    def __init__(
        self, producer: EventSender, topic: str, *, max_in_flight: int = 10_000, wait_for_delivery: bool = False
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._slots = asyncio.Semaphore(max_in_flight)
        self._wait = wait_for_delivery
        self._tasks: set[asyncio.Task[inference_pb2.PredictionDelivery]] = set()
        self.published = 0
        """Events Kafka acknowledged directly."""
        self.spooled = 0
        """Events written to the local spool (Kafka gets them when the spool drains)."""
        self.failed = 0
        """Events lost (logged with their ids)."""

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, prediction: events_pb2.Prediction, key: str) -> inference_pb2.PredictionDelivery:
        """Start delivering ``prediction`` (event id = ``prediction.event_id``); waits when full, and for the
        outcome with ``wait_for_delivery`` (a cancelled caller does not cancel the delivery). Returns the
        event's delivery state then (see the module doc)."""
        await self._slots.acquire()
        task = asyncio.create_task(self._deliver(prediction, key), name=f"prediction:{prediction.event_id}")
        self._tasks.add(task)
        metrics.PREDICTIONS_IN_FLIGHT.set(len(self._tasks))
        task.add_done_callback(self._finished)
        if not self._wait:
            return inference_pb2.PREDICTION_DELIVERY_PENDING
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[inference_pb2.PredictionDelivery]) -> None:
        self._tasks.remove(task)  # added in submit, finished once
        self._slots.release()
        metrics.PREDICTIONS_IN_FLIGHT.set(len(self._tasks))

    async def _deliver(self, prediction: events_pb2.Prediction, key: str) -> inference_pb2.PredictionDelivery:
        with _tracer.start_as_current_span(
            f"{self.topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": self.topic},
        ) as span:
            delivery = await self._send(prediction, key)
            span.set_attribute("aimesh.prediction.delivery", inference_pb2.PredictionDelivery.Name(delivery))
            return delivery

    async def _send(self, prediction: events_pb2.Prediction, key: str) -> inference_pb2.PredictionDelivery:
        try:
            ack = await self._producer.send_event(self.topic, prediction, key=key, event_id=prediction.event_id)
            outcome = await ack
        except Exception as exc:
            self.failed += 1
            metrics.PREDICTIONS_FAILED.inc()
            log.error(
                "prediction event lost: %r",
                exc,
                extra={"event.id": prediction.event_id, "request.id": prediction.request_id},
            )
            return inference_pb2.PREDICTION_DELIVERY_FAILED
        if outcome == Delivery.SPOOLED:
            self.spooled += 1
            metrics.PREDICTIONS_SPOOLED.inc()
            return inference_pb2.PREDICTION_DELIVERY_SPOOLED
        self.published += 1
        metrics.PREDICTIONS_PUBLISHED.inc()
        return inference_pb2.PREDICTION_DELIVERY_ACKNOWLEDGED

    async def drain(self, within_s: float | None = None) -> int:
        """Wait up to ``within_s`` seconds for pending deliveries; returns how many are still pending."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within_s)
        return len(self._tasks)


def answered_event_id(prediction: events_pb2.Prediction, delivery: inference_pb2.PredictionDelivery) -> str:
    """The event id a response names for ``prediction``: none (empty) when its delivery ``FAILED``."""
    return "" if delivery == inference_pb2.PREDICTION_DELIVERY_FAILED else prediction.event_id
