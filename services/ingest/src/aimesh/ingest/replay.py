"""DLQ replay: re-submit dead-lettered records to their source's intake topic, e.g. after a schema fix.

``replay_dead_letters`` is transport-free: it reads ``DeadLetter`` events from any async iterable
(``aimesh.core.scan.TopicScan`` of the DLQ topic in ``run_replay``) and sends each matching record's
``original_payload`` unchanged to where it came from (the upstream topic of ``DeadLetter.upstream``,
else the intake topic of its source, for records rejected by ``IngestService.Publish``). The ingest
pipeline then treats it like any upstream record: accepted if it is valid now, dead-lettered again if
not. Nothing is duplicated:

- the payload keeps its event id, and the pipeline drops event ids it already accepted (its
  persistent seen-events store), so replaying a record twice, or one that went through meanwhile,
  publishes nothing twice;
- a re-submitted record carries ``aimesh-replay-of`` (the original DLQ entry's position). If it is
  dead-lettered again, a later replay re-submits only one of the entries of that chain per run.

An entry whose payload was stored aside (``payload_ref``: too large for one record) is counted
``unroutable`` and not re-submitted; its file holds the original bytes.

PII: a DLQ payload holds tokens instead of raw PII values (``DeadLetter.masked_fields``); the
re-submitted record says so in ``aimesh-pii-masked`` so the validator accepts the tokens, and the raw
values never come back.

Every re-submission is acknowledged by Kafka (acks=all) before ``replay_dead_letters`` returns;
acknowledgements are awaited every ``window`` sends, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.message import DecodeError
from sqlalchemy.exc import SQLAlchemyError

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.core.bus import EventProducer
from aimesh.core.events import Event
from aimesh.core.scan import TopicScan
from aimesh.core.sql import create_engine
from aimesh.ingest.registry import SourceRegistry
from aimesh.ingest.settings import IngestSettings
from aimesh.ingest.sources import load_sources
from aimesh.ingest.validation import PII_MASKED_HEADER, masked_fields_header

REPLAY_OF_HEADER = "aimesh-replay-of"
REPLACED_HEADERS = frozenset({REPLAY_OF_HEADER, PII_MASKED_HEADER})


class RawSender(Protocol):
    """What the replay needs of ``aimesh.core.bus.EventProducer``."""

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which DLQ entries to replay: all by default. ``reason`` is a ``ReasonCode`` name (prefix optional)."""

    source: str | None = None
    reason: str | None = None

    def matches(self, letter: deadletter_pb2.DeadLetter) -> bool:
        if self.source is not None and letter.source != self.source:
            return False
        if self.reason is not None:
            wanted = self.reason.upper()
            wanted = wanted if wanted.startswith("REASON_CODE_") else f"REASON_CODE_{wanted}"
            if deadletter_pb2.ReasonCode.Name(letter.reason_code) != wanted:
                return False
        return True


@dataclass
class ReplaySummary:
    """What a replay read and did; ``resubmitted`` counts records Kafka acknowledged (or would, dry run)."""

    scanned: int = 0
    matched: int = 0
    resubmitted: int = 0
    already_replayed: int = 0
    unroutable: int = 0
    unreadable: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)


TargetTopic = Callable[[deadletter_pb2.DeadLetter], str | None]
"""The topic to re-submit a DLQ entry to, or None when its source is unknown."""


def upstream_or_intake_topic(intake_topics: dict[str, str]) -> TargetTopic:
    """Where an entry came from: its upstream topic, else its source's intake topic (push rejections)."""

    def target(letter: deadletter_pb2.DeadLetter) -> str | None:
        if letter.HasField("upstream") and letter.upstream.topic:
            return letter.upstream.topic
        return intake_topics.get(letter.source)

    return target


async def replay_dead_letters(
    letters: AsyncIterable[Event],
    target: TargetTopic,
    sender: RawSender | None,
    *,
    only: ReplayFilter = ReplayFilter(),
    on_progress: Callable[[ReplaySummary], None] = lambda _: None,
    window: int = 500,
) -> ReplaySummary:
    """Re-submit the matching entries of ``letters`` (see the module doc); ``sender`` None is a dry run.

    Returns when every re-submission is acknowledged; raises what Kafka raised otherwise (records
    sent before may have been re-submitted: running the replay again is safe).
    """
    summary = ReplaySummary()
    done: set[str] = set()
    pending: list[asyncio.Future[Any]] = []
    async for event in letters:
        summary.scanned += 1
        letter = _letter(event)
        if letter is None:
            summary.unreadable += 1
        elif only.matches(letter):
            summary.matched += 1
            original = _original_key(event, letter)
            topic = target(letter)
            if original in done:
                summary.already_replayed += 1
            elif topic is None or not letter.source or letter.payload_ref:  # stored aside: too large to replay
                summary.unroutable += 1
            else:
                done.add(original)
                if sender is not None:
                    pending.append(await _resubmit(sender, topic, letter, original))
                summary.resubmitted += 1
                summary.by_source[letter.source] += 1
                summary.by_reason[deadletter_pb2.ReasonCode.Name(letter.reason_code).removeprefix("REASON_CODE_")] += 1
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
        on_progress(summary)
    await asyncio.gather(*pending)
    return summary


def _letter(event: Event) -> deadletter_pb2.DeadLetter | None:
    letter = deadletter_pb2.DeadLetter()
    try:
        letter.ParseFromString(event.value)
    except DecodeError:
        return None
    return letter


def _original_key(event: Event, letter: deadletter_pb2.DeadLetter) -> str:
    """The DLQ position of the first entry of a replay chain (this entry's own when it is no replay)."""
    for header in letter.original_headers:
        if header.key == REPLAY_OF_HEADER:
            return header.value.decode("utf-8", "replace")
    return f"{event.topic}/{event.partition}/{event.offset}"


async def _resubmit(
    sender: RawSender, topic: str, letter: deadletter_pb2.DeadLetter, original: str
) -> asyncio.Future[Any]:
    headers = [(h.key, h.value) for h in letter.original_headers if h.key not in REPLACED_HEADERS]
    headers.append((REPLAY_OF_HEADER, original.encode()))
    if letter.masked_fields:
        headers.append(masked_fields_header(letter.masked_fields))
    return await sender.send_raw(topic, letter.original_payload, key=letter.event_id or None, headers=headers)


async def intake_topics(settings: IngestSettings) -> dict[str, str]:
    """Source name -> intake topic: the registry's current versions (``INGEST_SOURCES_FILE``, if set, when
    the database cannot be read or holds none yet), with the deployment's topic overrides."""
    engine = create_engine(settings.sqlalchemy_url())
    try:
        stored = [s.definition for s in await SourceRegistry(engine).current()]
    except SQLAlchemyError:
        stored = []
    finally:
        await engine.dispose()
    if not stored and settings.sources_file is not None:
        stored = list(load_sources(settings.sources_file))
    topics = {d.name: d.intake_topic for d in stored}
    return topics | {name: topic for name, topic in settings.source_topics.items() if name in topics}


async def run_replay(
    settings: IngestSettings,
    *,
    only: ReplayFilter = ReplayFilter(),
    since: datetime | None = None,
    dry_run: bool = False,
    on_start: Callable[[int], None] = lambda _: None,
    on_progress: Callable[[ReplaySummary], None] = lambda _: None,
) -> ReplaySummary:
    """Replay ``settings.dlq_topic`` (entries written at or after ``since``; default all) into ``kafka_bootstrap``.

    ``on_start`` gets the number of DLQ offsets to scan. Raises aiokafka's ``KafkaError`` when Kafka
    does not answer, ``TimeoutError`` when the scan stalls.
    """
    target = upstream_or_intake_topic(await intake_topics(settings))
    since_ms = None if since is None else int(since.timestamp() * 1000)
    async with TopicScan(settings.kafka_bootstrap, settings.dlq_topic, since_ms=since_ms) as scan:
        on_start(scan.total)
        if dry_run:
            return await replay_dead_letters(scan, target, None, only=only, on_progress=on_progress)
        async with EventProducer(settings.kafka_bootstrap, source=f"{settings.service_name}-replay") as producer:
            return await replay_dead_letters(scan, target, producer, only=only, on_progress=on_progress)
