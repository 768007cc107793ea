"""Kafka event envelope: protobuf payloads with CloudEvents binary-mode headers and W3C trace context.

Headers on every event: ``ce_specversion``, ``ce_id``, ``ce_type`` (the protobuf full name),
``ce_source``, ``ce_time`` (RFC 3339), ``content-type`` and, when a span is active, ``traceparent``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from aimesh.core.tracing import inject_headers

PROTOBUF_CONTENT_TYPE = "application/protobuf"
M = TypeVar("M", bound=Message)
Headers = tuple[tuple[str, bytes], ...]


class PoisonEvent(Exception):
    """An event that can never be handled (undecodable, invalid). The consumer dead-letters it and moves on.

    ``reason_code`` is a short machine-readable code (a ``ReasonCode`` name such as ``MISSING_FIELD``),
    ``message`` a human explanation.
    """

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


def cloudevent_headers(
    *,
    event_type: str,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    content_type: str = PROTOBUF_CONTENT_TYPE,
    extra: Sequence[tuple[str, bytes]] = (),
) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers plus the current trace context; ``event_id`` defaults to a UUID4."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", (event_id or str(uuid.uuid4())).encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", (time or datetime.now(UTC)).isoformat().encode()),
        ("content-type", content_type.encode()),
    ]
    headers.extend((k, v.encode()) for k, v in inject_headers().items())
    headers.extend(extra)
    return headers


def event_record(
    message: Message, *, source: str, event_id: str | None = None, extra: Sequence[tuple[str, bytes]] = ()
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The Kafka value and headers of ``message`` as an aimesh event: its bytes and ``cloudevent_headers``
    with ``ce_type`` = the message's full name (what every ``EventSender.send_event`` writes)."""
    headers = cloudevent_headers(event_type=message.DESCRIPTOR.full_name, source=source, event_id=event_id, extra=extra)
    return message.SerializeToString(), headers


@dataclass(frozen=True, slots=True)
class Event:
    """One consumed Kafka record, transport-free: what handlers receive."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    @classmethod
    def from_record(cls, record: Any) -> Event:
        """The event of a consumed aiokafka ``ConsumerRecord`` (a null value becomes empty bytes)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=tuple(record.headers or ()),
            timestamp_ms=record.timestamp,
        )

    def header(self, name: str) -> str | None:
        """The last header called ``name``, decoded as UTF-8, or None."""
        for k, v in reversed(self.headers):
            if k == name:
                return v.decode("utf-8", "replace")
        return None

    @property
    def id(self) -> str:
        """The CloudEvents id, or ``<topic>/<partition>/<offset>`` for events without one."""
        return self.header("ce_id") or f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def ce_type(self) -> str | None:
        """The CloudEvents type: the protobuf full name of the payload."""
        return self.header("ce_type")

    def parse(self, message_type: type[M]) -> M:
        """Decode the protobuf payload; raises PoisonEvent: ``UNEXPECTED_EVENT_TYPE`` for another ce_type,
        ``DECODE_ERROR`` when the bytes are not a ``message_type``."""
        expected = message_type.DESCRIPTOR.full_name
        if self.ce_type is not None and self.ce_type != expected:
            raise PoisonEvent("UNEXPECTED_EVENT_TYPE", f"expected ce_type {expected}, got {self.ce_type}")
        msg: M = message_type()
        try:
            msg.ParseFromString(self.value)
        except DecodeError as exc:
            raise PoisonEvent("DECODE_ERROR", f"not a valid {expected}: {exc}") from exc
        return msg
