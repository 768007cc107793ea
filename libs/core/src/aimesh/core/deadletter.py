"""The dead-letter helper: rejected records go to ``aimesh.ingest.dlq.v1`` with their original bytes and why."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.api.ingest.v1 import events_pb2, ingest_pb2
from aimesh.core.bus import EventProducer
from aimesh.core.events import Event
from aimesh.core.topics import INGEST_DLQ


def reason_code_value(code: str) -> int:
    """The ``ReasonCode`` enum number for ``code`` (``"MISSING_FIELD"`` or ``"REASON_CODE_MISSING_FIELD"``).

    Unknown codes map to ``REASON_CODE_UNSPECIFIED``; the human message still says what happened.
    """
    enum = ingest_pb2.ReasonCode.DESCRIPTOR
    name = code if code.startswith("REASON_CODE_") else f"REASON_CODE_{code}"
    value = enum.values_by_name.get(name)
    return value.number if value is not None else 0


def dead_letter_event_id(event: Event) -> str:
    """The DLQ ``ce_id`` of a rejected upstream record: derived from its position, so a redelivery repeats it."""
    return f"dlq:{event.topic}/{event.partition}/{event.offset}"


def build_dead_letter(
    *,
    payload: bytes,
    headers: tuple[tuple[str, bytes], ...],
    source: str,
    reason_code: str,
    message: str,
    event_id: str = "",
    field: str = "",
    position: tuple[str, int, int] | None = None,
    masked_fields: tuple[str, ...] = (),
) -> events_pb2.DeadLetter:
    """A DeadLetter record; ``position`` is the upstream (topic, partition, offset) when there is one.

    ``masked_fields`` names the PII fields whose value in ``payload`` was replaced by its token.
    """
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    dl = events_pb2.DeadLetter(
        original_payload=payload,
        source=source,
        reason_code=reason_code_value(reason_code),  # type: ignore[arg-type]
        message=message,
        time=now,
        event_id=event_id,
        field=field,
        masked_fields=masked_fields,
    )
    dl.original_headers.extend(common_pb2.Header(key=k, value=v) for k, v in headers)
    if position is not None:
        topic, partition, offset = position
        dl.upstream.CopyFrom(common_pb2.KafkaPosition(topic=topic, partition=partition, offset=offset))
    return dl


class DeadLetterPublisher:
    """A ``DeadLetterSink`` that publishes to the DLQ topic and returns once Kafka acknowledged it.

    The record is keyed by the source name; its event id is derived from the upstream position, so a
    redelivered poison record produces a DLQ entry with the same ``ce_id`` (consumers dedupe on it).
    """

    def __init__(self, producer: EventProducer, source: str, topic: str = INGEST_DLQ) -> None:
        self._producer = producer
        self._source = source
        self._topic = topic

    async def send(self, event: Event, reason_code: str, message: str) -> None:
        dl = build_dead_letter(
            payload=event.value,
            headers=event.headers,
            source=self._source,
            reason_code=reason_code,
            message=message,
            event_id=event.header("ce_id") or "",
            position=(event.topic, event.partition, event.offset),
        )
        await self._producer.publish(
            self._topic,
            dl,
            key=self._source,
            event_id=dead_letter_event_id(event),
        )
