"""The push intake behind ``IngestService.Publish``: validate a batch, answer per record, lose nothing.

``PushIntake.publish`` validates each record with the source's current ``Validator`` (the one the
Kafka path uses) and then

- produces every accepted record's payload, unchanged, to the source's intake topic (its headers with
  their PANs tokenised: headers are kept as sent nowhere) (its upstream
  topic, or ``aimesh.ingest.push.<source>.v1`` for a push-only source), keyed by the entity key; the
  ingest consumer then publishes its canonical record and lake row like any upstream record's, and
  drops event ids it already accepted, so retried calls publish nothing twice;
- dead-letters every rejected record (PII masked, ``masked_fields`` set; ``ce_id`` derived from the
  source and payload, so a retried call repeats it);
- returns only after Kafka acknowledged all of them (``acks=all``).

A record sent without a ``traceparent`` header of its own carries the call's trace context (the
``Publish`` server span) onto the intake topic, so the ingest consumer continues the caller's trace.

Raises (the gRPC interceptor maps them): ``InvalidArgument`` for an empty source name or too many
records, ``NotFound`` for an unknown source, ``ResourceExhausted`` for a record over the size limit
(nothing is sent for such calls), ``Unavailable`` when Kafka did not acknowledge everything within
``ack_timeout_s``: then no record of the call is reported accepted, and the caller retries the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter

from aimesh.core import metrics as core_metrics
from aimesh.core.bus import EventSender
from aimesh.core.deadletter import DeadLetterBounds, build_dead_letter
from aimesh.core.errors import InvalidArgument, ResourceExhausted, Unavailable
from aimesh.core.tracing import inject_headers
from aimesh.ingest import metrics
from aimesh.ingest.catalog import ActiveSource, SourceCatalog
from aimesh.ingest.validation import (
    PII_MASKED_HEADER,
    Rejection,
    ValidRecord,
    headers_note,
    masked_headers,
    parse_masked_fields,
)

log = logging.getLogger(__name__)
SERVICE = "ingest"
PUSHED = Counter(
    "aimesh_ingest_push_records_total", "Records received through IngestService.Publish", ["source", "status"]
)


class PushSender(EventSender, Protocol):
    """What the push intake needs of ``aimesh.core.bus.EventProducer``: raw sends and event sends."""

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


@dataclass(frozen=True, slots=True)
class PushRecord:
    """One record of a Publish call: the payload in the source's format, an optional id and headers."""

    payload: bytes
    event_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """The answer for one record: accepted (``reason`` empty) or rejected with a ``ReasonCode`` name."""

    index: int
    event_id: str
    reason: str = ""
    message: str = ""
    field: str = ""

    @property
    def accepted(self) -> bool:
        return not self.reason


@dataclass(frozen=True, slots=True)
class PushLimits:
    max_records: int = 1000
    max_record_bytes: int = 256 * 1024
    ack_timeout_s: float = 10.0


class PushIntake:
    """Validates pushed batches and hands them to Kafka (see the module doc)."""

    def __init__(
        self,
        catalog: SourceCatalog,
        sender: PushSender,
        *,
        dlq_topic: str,
        limits: PushLimits,
        dead_letter_bounds: DeadLetterBounds | None = None,
    ) -> None:
        self._catalog = catalog
        self._sender = sender
        self._dlq_topic = dlq_topic
        self._limits = limits
        self._bounds = dead_letter_bounds

    async def publish(self, source: str, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Validate, produce and dead-letter ``records`` of ``source``; one outcome per record, in order."""
        if not source:
            raise InvalidArgument("source is required")
        active = self._catalog.current(source)
        self._check_limits(records)
        outcomes: list[PushOutcome] = []
        try:
            async with asyncio.timeout(self._limits.ack_timeout_s):
                pending = [await self._send(active, index, record, outcomes) for index, record in enumerate(records)]
                await asyncio.gather(*pending)
        except Exception as exc:
            raise Unavailable(
                f"Kafka did not acknowledge the records of {source} within {self._limits.ack_timeout_s}s "
                f"({type(exc).__name__}: {exc or 'timed out'}); no record of this call is accepted, retry it "
                "(event ids that did get through are not published twice)"
            ) from exc
        accepted = sum(o.accepted for o in outcomes)
        PUSHED.labels(source, "accepted").inc(accepted)
        PUSHED.labels(source, "rejected").inc(len(outcomes) - accepted)
        for outcome in outcomes:
            if not outcome.accepted:
                metrics.RECORDS_REJECTED.labels(source, outcome.reason).inc()
                core_metrics.EVENTS_DEAD_LETTERED.labels(SERVICE, active.definition.intake_topic, outcome.reason).inc()
        return outcomes

    def _check_limits(self, records: Sequence[PushRecord]) -> None:
        limits = self._limits
        if len(records) > limits.max_records:
            raise InvalidArgument(
                f"records: {len(records)} records > limit {limits.max_records} per call "
                "(INGEST_PUSH_MAX_RECORDS); split the batch"
            )
        for index, record in enumerate(records):
            if len(record.payload) > limits.max_record_bytes:
                raise ResourceExhausted(
                    f"records[{index}].payload: {len(record.payload)} bytes > limit {limits.max_record_bytes} "
                    "bytes per record (INGEST_PUSH_MAX_RECORD_BYTES)"
                )

    async def _send(
        self, active: ActiveSource, index: int, record: PushRecord, outcomes: list[PushOutcome]
    ) -> asyncio.Future[Any]:
        """Queue the record's effect (intake topic or DLQ), append its outcome; returns the ack future."""
        masked = parse_masked_fields(record.headers.get(PII_MASKED_HEADER))
        result = active.validator.validate(record.payload, masked=masked)
        if isinstance(result, ValidRecord) and record.event_id and record.event_id != result.event_id:
            result = self._mismatch(active, record, result, masked)
        own = [(k, v.encode()) for k, v in record.headers.items()]
        if not any(k.lower() == "traceparent" for k, _ in own):
            own.extend((k, v.encode()) for k, v in inject_headers().items())
        headers, pan_headers = masked_headers(active.validator.masker, own)
        if pan_headers:
            metrics.PANS_MASKED.labels(active.definition.name, "push_header").inc(len(pan_headers))
        if isinstance(result, ValidRecord):
            outcomes.append(PushOutcome(index, result.event_id))
            return await self._sender.send_raw(
                active.definition.intake_topic, record.payload, key=result.entity_key, headers=headers
            )
        event_id = result.event_id or active.validator.masker.mask_text(record.event_id or "")[0]
        outcomes.append(PushOutcome(index, event_id, result.reason, result.message, result.field))
        letter = build_dead_letter(
            payload=result.dlq_payload,
            headers=headers,
            service=SERVICE,
            source=active.definition.name,
            reason_code=result.reason,
            message=result.message + headers_note(pan_headers),
            event_id=event_id,
            field=result.field,
            masked_fields=result.masked_fields,
        )
        if self._bounds is not None:
            letter = await self._bounds.fit(letter)
        digest = hashlib.sha256(record.payload).hexdigest()[:32]
        return await self._sender.send_event(
            self._dlq_topic, letter, key=active.definition.name, event_id=f"dlq:push/{active.definition.name}/{digest}"
        )

    @staticmethod
    def _mismatch(active: ActiveSource, record: PushRecord, valid: ValidRecord, masked: frozenset[str]) -> Rejection:
        name = active.definition.event_id_field
        payload, masked_fields = active.validator.masked_payload(record.payload, masked=masked)
        mask = active.validator.masker.mask_text
        return Rejection(
            "EVENT_ID_MISMATCH",
            mask(f"event_id {record.event_id!r} differs from the payload's {name} {valid.event_id!r}")[0],
            field=name,
            event_id=mask(record.event_id or "")[0],
            dlq_payload=payload,
            masked_fields=masked_fields,
        )
