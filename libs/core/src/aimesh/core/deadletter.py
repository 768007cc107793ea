"""Dead letters: records a service cannot handle go to its own ``aimesh.<service>.dlq.v1``, always fitting.

Contract (``aimesh.api.common.v1.DeadLetter``):

- ``reason_code`` is a ``ReasonCode`` name (``"MISSING_FIELD"`` or ``"REASON_CODE_MISSING_FIELD"``);
  ``reason_code_value`` raises ``ValueError`` for a name the enum lacks and for ``UNSPECIFIED``, so
  nothing aimesh writes carries an unspecified reason.
- ``service`` names the writer; the topic is ``dlq_topic(service)``.
- A dead letter always fits the producer's record limit (``max_record_bytes``, aiokafka's
  ``max_request_size``, 1 MiB by default, less ``HEADROOM`` for the key, the CloudEvents headers and
  the batch overhead). ``DeadLetterBounds.fit`` makes it fit: an original payload that is too large is
  written to ``PayloadStore`` (a file named by its sha256 under the dead-letter payload root, fsynced
  and renamed into place before ``fit`` returns, so before the dead letter is sent) and replaced by
  ``payload_ref`` (its ``file://`` URI), ``payload_preview`` (its first ``preview_bytes``) and
  ``payload_size`` (a payload no longer than the preview stays inline). If the entry is still too
  large, header values are cut to ``HEADER_CUT_BYTES``, then the headers are dropped; ``message``
  says which. ``message`` is always cut to ``MAX_MESSAGE_CHARS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import urlparse
from urllib.request import url2pathname

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2, deadletter_pb2
from aimesh.core.bus import EventProducer
from aimesh.core.events import Event
from aimesh.core.pan import PanMasker
from aimesh.core.settings import ServiceSettings
from aimesh.core.topics import dlq_topic

DeadLetter = deadletter_pb2.DeadLetter
DEAD_LETTER_TYPES = frozenset({DeadLetter.DESCRIPTOR.full_name, "aimesh.api.ingest.v1.DeadLetter"})
"""ce_types of dead letters: the current one and the one written before the contract moved to common."""
DEFAULT_MAX_RECORD_BYTES = 1_048_576
"""aiokafka's default ``max_request_size``: the producer refuses a larger record."""
HEADROOM = 16 * 1024
"""Room left under ``max_record_bytes`` for the Kafka key, the CloudEvents headers and record overhead."""
DEFAULT_PREVIEW_BYTES = 1024
HEADER_CUT_BYTES = 1024
MAX_MESSAGE_CHARS = 4096


def reason_code_value(code: str) -> deadletter_pb2.ReasonCode:
    """The ``ReasonCode`` number for ``code`` (``"MISSING_FIELD"`` or ``"REASON_CODE_MISSING_FIELD"``).

    Raises ``ValueError`` (naming the known codes) for an unknown code and for ``UNSPECIFIED``.
    """
    name = code if code.startswith("REASON_CODE_") else f"REASON_CODE_{code}"
    value = deadletter_pb2.ReasonCode.DESCRIPTOR.values_by_name.get(name)
    if value is None or value.number == deadletter_pb2.REASON_CODE_UNSPECIFIED:
        known = ", ".join(reason_code_names())
        raise ValueError(f"{code!r} is not a dead-letter ReasonCode; known: {known}")
    return cast("deadletter_pb2.ReasonCode", value.number)


def reason_code_names() -> list[str]:
    """Every ReasonCode a dead letter may carry, without the ``REASON_CODE_`` prefix."""
    return [
        v.name.removeprefix("REASON_CODE_")
        for v in deadletter_pb2.ReasonCode.DESCRIPTOR.values
        if v.number != deadletter_pb2.REASON_CODE_UNSPECIFIED
    ]


def dead_letter_event_id(event: Event) -> str:
    """The DLQ ``ce_id`` of a rejected record: derived from its position, so a redelivery repeats it."""
    return f"dlq:{event.topic}/{event.partition}/{event.offset}"


def _cut(message: str, note: str = "") -> str:
    """``message`` + ``note`` in at most ``MAX_MESSAGE_CHARS``; the message is cut (with "…"), never the note."""
    room = MAX_MESSAGE_CHARS - len(note)
    return (message if len(message) <= room else message[: room - 1] + "…") + note


def build_dead_letter(
    *,
    payload: bytes,
    headers: tuple[tuple[str, bytes], ...],
    service: str,
    reason_code: str,
    message: str,
    source: str = "",
    event_id: str = "",
    field: str = "",
    position: tuple[str, int, int] | None = None,
    masked_fields: tuple[str, ...] = (),
) -> DeadLetter:
    """A DeadLetter written by ``service``; ``position`` is the original (topic, partition, offset) if any.

    ``masked_fields`` names the PII fields whose value in ``payload`` was replaced by its token. Raises
    ``ValueError`` for a ``reason_code`` the enum lacks. The entry is not size-bounded yet: pass it
    through ``DeadLetterBounds.fit`` before sending it.
    """
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    dl = DeadLetter(
        original_payload=payload,
        source=source,
        reason_code=reason_code_value(reason_code),
        message=_cut(message),
        time=now,
        event_id=event_id,
        field=field,
        masked_fields=masked_fields,
        service=service,
        payload_size=len(payload),
    )
    dl.original_headers.extend(common_pb2.Header(key=k, value=v) for k, v in headers)
    if position is not None:
        topic, partition, offset = position
        dl.upstream.CopyFrom(common_pb2.KafkaPosition(topic=topic, partition=partition, offset=offset))
    return dl


class PayloadStore:
    """Content-addressed files: ``<root>/sha256/<first two hex>/<sha256 hex>``.

    ``put`` is idempotent (the same bytes land in the same file) and durable when it returns: the file
    is written to a temporary name in the target directory, fsynced, renamed into place, and the
    directory fsynced.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its ``file://`` URI. Raises ``OSError`` when it cannot be written."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest)
        if not path.exists() or path.stat().st_size != len(data):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest[:8]}-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return path.resolve().as_uri()

    @staticmethod
    def read(ref: str) -> bytes:
        """The bytes behind a ``payload_ref``; raises ``ValueError`` for a non-file URI, ``OSError`` if gone."""
        parsed = urlparse(ref)
        if parsed.scheme != "file":
            raise ValueError(f"payload_ref {ref!r} is not a file:// URI")
        return Path(url2pathname(parsed.path)).read_bytes()


class DeadLetterBounds:
    """Makes a dead letter fit one Kafka record (see the module doc)."""

    def __init__(
        self,
        store: PayloadStore,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        preview_bytes: int = DEFAULT_PREVIEW_BYTES,
    ) -> None:
        if max_record_bytes <= HEADROOM + preview_bytes:
            raise ValueError(f"max_record_bytes {max_record_bytes} leaves no room for a dead letter")
        self.store = store
        self.limit = max_record_bytes - HEADROOM
        self.preview_bytes = preview_bytes

    async def fit(self, letter: DeadLetter) -> DeadLetter:
        """``letter``, changed in place so that it serialises to at most ``limit`` bytes.

        Blocks (in a worker thread) until an oversized payload is durable in the store; raises
        ``OSError`` when it cannot be stored, so the caller retries instead of losing it.
        """
        if letter.ByteSize() <= self.limit:
            return letter
        payload = letter.original_payload
        if len(payload) > self.preview_bytes:
            letter.payload_ref = await asyncio.to_thread(self.store.put, payload)
            letter.payload_preview = payload[: self.preview_bytes]
            letter.payload_size = len(payload)
            letter.original_payload = b""
        if letter.ByteSize() > self.limit:
            for header in letter.original_headers:
                header.value = header.value[:HEADER_CUT_BYTES]
            letter.message = _cut(letter.message, f" (header values cut to {HEADER_CUT_BYTES} bytes)")
        if letter.ByteSize() > self.limit:
            count = len(letter.original_headers)
            del letter.original_headers[:]
            letter.message = _cut(letter.message, f" ({count} headers dropped: too large)")
        return letter


def dead_letter_bounds(settings: ServiceSettings) -> DeadLetterBounds:
    """The service's ``DeadLetterBounds`` from its ``dead_letter_*`` settings."""
    root = settings.dead_letter_payload_root or settings.data_dir / "dead-letters"
    return DeadLetterBounds(
        PayloadStore(root),
        max_record_bytes=settings.dead_letter_max_record_bytes,
        preview_bytes=settings.dead_letter_preview_bytes,
    )


class DeadLetterPublisher:
    """A ``DeadLetterSink`` that publishes to ``aimesh.<service>.dlq.v1``; returns once Kafka acknowledged it.

    The record is keyed by the service name and fitted by ``bounds``; its event id is derived from the
    original position, so a redelivered poison record produces a DLQ entry with the same ``ce_id``
    (consumers, monitor's index included, dedupe on it). With ``masker`` every card number (PAN) in the
    payload copy, the header values and the message is replaced by its token before the record is built
    (``PanMasker.mask_bytes``: Luhn-valid 13-19 digit runs, the payload kept as bytes, parsed or not), for
    services whose input may hold raw PANs (ingest's upstream records).
    """

    def __init__(
        self,
        producer: EventProducer,
        service: str,
        bounds: DeadLetterBounds,
        *,
        topic: str | None = None,
        masker: PanMasker | None = None,
    ) -> None:
        self._producer = producer
        self.service = service
        self.topic = topic or dlq_topic(service)
        self._bounds = bounds
        self._masker = masker

    async def send(self, event: Event, reason_code: str, message: str, *, field: str = "") -> None:
        """Dead-letter ``event``; raises ``ValueError`` for an unknown reason, Kafka or ``OSError`` otherwise."""
        payload, headers, event_id = event.value, event.headers, event.header("ce_id") or ""
        if self._masker is not None:
            payload = self._masker.mask_bytes(payload)[0]
            headers = tuple((key, self._masker.mask_bytes(value)[0]) for key, value in headers)
            message, event_id = self._masker.mask_text(message)[0], self._masker.mask_text(event_id)[0]
        dl = build_dead_letter(
            payload=payload,
            headers=headers,
            service=self.service,
            reason_code=reason_code,
            message=message,
            event_id=event_id,
            field=field,
            position=(event.topic, event.partition, event.offset),
        )
        await self._producer.publish(
            self.topic, await self._bounds.fit(dl), key=self.service, event_id=dead_letter_event_id(event)
        )


def dead_letter_publisher(producer: EventProducer, settings: ServiceSettings) -> DeadLetterPublisher:
    """The service's ``DeadLetterPublisher``: its own DLQ topic, bounded by its ``dead_letter_*`` settings."""
    return DeadLetterPublisher(producer, settings.service_name, dead_letter_bounds(settings))
