"""The alert lifecycle: one open alert per subject, raised once, updated while it fires, then resolved.

A *subject* is ``(rule, model_name, model_version, feature, service)``. ``AlertBook.fire`` raises a
FIRING alert for a subject with none open, or updates the open one in place (same ``alert_id``, same
raise ``time``: value, threshold, severity, message, trace id and labels follow the newest call; an
ACKNOWLEDGED alert stays acknowledged). ``resolve`` closes it (state RESOLVED, ``resolved_time``) and
``acknowledge`` marks it seen (state ACKNOWLEDGED, ``acknowledged_by``/``acknowledged_time``).

Every change is first published to the alerts topic, waiting for Kafka's acknowledgement (Kafka key:
``model_name``, else ``service``; event id ``<alert_id>:<revision>``, the revision counting the alert's
changes from 1), then indexed into ``<prefix>-alerts`` (``_id`` = ``alert_id``, so the index holds each
alert's latest state). The in-memory state moves only once both succeeded: a failed change raises and the
next call repeats it with the same event id (a raise that failed keeps its start time, hence its id). A
change of kind, severity, threshold or labels is published at once; a change of only the value, message or
trace id is kept in memory (``firing`` shows it) and published by the first ``fire`` after
``update_interval_s`` since the last publication, so a rule re-evaluated every few seconds does not flood
the topic.

``alert_id`` is ``<rule>:<model_name>:<model_version>:<feature>:<service>:<raise time in ms>``: a subject
raised again after a resolve gets a new id. ``load`` rebuilds the open alerts (and their revisions) from
the index at start, so a restarted monitor updates or resolves the alerts it raised before instead of
raising them again. State is per process: replicas each keep the alerts they raise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.core.bus import EventSender
from aimesh.core.errors import NotFound
from aimesh.monitor import metrics
from aimesh.monitor.documents import Document, alert_document

log = logging.getLogger(__name__)

OPEN_STATES = (monitor_events.ALERT_STATE_FIRING, monitor_events.ALERT_STATE_ACKNOWLEDGED)


class AlertIndex(Protocol):
    """What ``AlertBook`` needs from Elasticsearch (``ElasticStore`` has it)."""

    indices: dict[str, str]

    async def index_one(self, index: str, doc_id: str, document: Document) -> None: ...

    async def open_alerts(self, page_size: int = 1000) -> list[tuple[monitor_events.Alert, int]]: ...


class Subject(NamedTuple):
    """What one open alert is about."""

    rule: str
    model_name: str
    model_version: int
    feature: str
    service: str

    @classmethod
    def of(cls, alert: monitor_events.Alert) -> Subject:
        return cls(alert.rule, alert.model_name, alert.model_version, alert.feature, alert.service)


@dataclass(slots=True)
class _Open:
    alert: monitor_events.Alert
    revision: int
    published_at: float
    """Monotonic time of the last published change."""
    held: bool = False
    """``alert`` holds a change not published yet (a minor one within ``update_interval_s``)."""


def alert_id(subject: Subject, raised: datetime) -> str:
    """The deterministic id of the alert raised for ``subject`` at ``raised``."""
    millis = int(raised.timestamp() * 1000)
    return f"{subject.rule}:{subject.model_name}:{subject.model_version}:{subject.feature}:{subject.service}:{millis}"


def _major_fields(alert: monitor_events.Alert) -> tuple[object, ...]:
    """A change of these is published at once; of the others (value, message, trace id) at most once per
    ``update_interval_s``."""
    return (alert.state, alert.kind, alert.severity, alert.threshold, dict(alert.labels))


def _minor_fields(alert: monitor_events.Alert) -> tuple[object, ...]:
    return (alert.value, alert.message, alert.trace_id)


class AlertBook:
    """One FIRING (or ACKNOWLEDGED) alert per subject = (rule, model_name, model_version, feature, service):
    raised once, updated in place while it fires, resolved when its rule says the condition is gone.
    Every change is published to the alerts topic (key model_name or service, event id = alert_id + ':' +
    a change counter) and indexed into <prefix>-alerts (_id = alert_id). See the module doc."""

    def __init__(
        self,
        index: AlertIndex,
        producer: EventSender,
        topic: str,
        *,
        update_interval_s: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._index = index
        self._producer = producer
        self._topic = topic
        self._update_interval_s = update_interval_s
        self._clock = clock
        self._monotonic = monotonic
        self._open: dict[Subject, _Open] = {}
        self._raise_times: dict[Subject, datetime] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> int:
        """Rebuild the open alerts from the index (the newest per subject wins); returns how many.
        Raises ``Unavailable`` when Elasticsearch is down."""
        found = await self._index.open_alerts()
        async with self._lock:
            self._open.clear()
            for alert, revision in reversed(found):
                self._open[Subject.of(alert)] = _Open(alert, revision, self._monotonic())
        return len(self._open)

    async def fire(
        self,
        *,
        rule: str,
        kind: int,
        severity: int,
        model_name: str = "",
        model_version: int = 0,
        feature: str = "",
        service: str = "",
        message: str,
        value: float,
        threshold: float,
        trace_id: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> monitor_events.Alert:
        """Raise the subject's alert, or update the open one; returns it as it now stands."""
        subject = Subject(rule, model_name, model_version, feature, service)
        async with self._lock:
            current = self._open.get(subject)
            alert = monitor_events.Alert()
            if current is None:
                raised = self._raise_times.setdefault(subject, self._clock())
                alert.alert_id = alert_id(subject, raised)
                alert.time.FromDatetime(raised)
                alert.state = monitor_events.ALERT_STATE_FIRING
                alert.rule, alert.model_name, alert.model_version = rule, model_name, model_version
                alert.feature, alert.service = feature, service
            else:
                alert.CopyFrom(current.alert)
            alert.kind = kind  # type: ignore[assignment]
            alert.severity = severity  # type: ignore[assignment]
            alert.message, alert.value, alert.threshold, alert.trace_id = message, value, threshold, trace_id
            alert.labels.clear()
            alert.labels.update(labels or {})
            if current is not None and _major_fields(alert) == _major_fields(current.alert):
                changed = current.held or _minor_fields(alert) != _minor_fields(current.alert)
                if not changed or self._monotonic() - current.published_at < self._update_interval_s:
                    current.alert.CopyFrom(alert)
                    current.held = changed
                    return _copy(alert)
            await self._publish(subject, alert, (current.revision if current else 0) + 1)
            if current is None:
                self._raise_times.pop(subject, None)
                metrics.ALERTS_RAISED.labels(
                    monitor_events.AlertKind.Name(kind).removeprefix("ALERT_KIND_"),
                    monitor_events.Severity.Name(severity),
                ).inc()
                log.warning("alert raised", extra={"alert.id": alert.alert_id, "alert.rule": rule, "value": value})
            return _copy(alert)

    async def resolve(
        self, *, rule: str, model_name: str = "", model_version: int = 0, feature: str = "", service: str = ""
    ) -> monitor_events.Alert | None:
        """Resolve the subject's open alert and return it; None when nothing was firing."""
        subject = Subject(rule, model_name, model_version, feature, service)
        async with self._lock:
            self._raise_times.pop(subject, None)
            current = self._open.get(subject)
            if current is None:
                return None
            alert = _copy(current.alert)
            alert.state = monitor_events.ALERT_STATE_RESOLVED
            alert.resolved_time.FromDatetime(self._clock())
            await self._publish(subject, alert, current.revision + 1)
            del self._open[subject]
            log.info("alert resolved", extra={"alert.id": alert.alert_id, "alert.rule": rule})
            return alert

    async def acknowledge(self, alert_id: str, actor: str) -> monitor_events.Alert:
        """Mark the open alert ``alert_id`` as seen by ``actor`` (it stays open until its rule resolves it);
        acknowledging it again returns it unchanged. ``NotFound`` when no open alert has that id."""
        async with self._lock:
            found = next(((s, o) for s, o in self._open.items() if o.alert.alert_id == alert_id), None)
            if found is None:
                raise NotFound(f"no firing or acknowledged alert has id {alert_id!r} (unknown, or resolved)")
            subject, current = found
            if current.alert.state == monitor_events.ALERT_STATE_ACKNOWLEDGED:
                return _copy(current.alert)
            alert = _copy(current.alert)
            alert.state = monitor_events.ALERT_STATE_ACKNOWLEDGED
            alert.acknowledged_by = actor
            alert.acknowledged_time.FromDatetime(self._clock())
            await self._publish(subject, alert, current.revision + 1)
            log.info("alert acknowledged", extra={"alert.id": alert_id, "actor": actor})
            return _copy(alert)

    def firing(self) -> list[monitor_events.Alert]:
        """The open (FIRING or ACKNOWLEDGED) alerts, oldest raise first (copies)."""
        opened = sorted(self._open.values(), key=lambda o: (o.alert.time.ToNanoseconds(), o.alert.alert_id))
        return [_copy(o.alert) for o in opened]

    async def _publish(self, subject: Subject, alert: monitor_events.Alert, revision: int) -> None:
        """Send, await the ack, index, then record (the caller holds the lock)."""
        key = alert.model_name or alert.service
        ack = await self._producer.send_event(self._topic, alert, key=key, event_id=f"{alert.alert_id}:{revision}")
        await ack
        await self._index.index_one(self._index.indices["alerts"], alert.alert_id, alert_document(alert, revision))
        if alert.state in OPEN_STATES:
            self._open[subject] = _Open(_copy(alert), revision, self._monotonic())


def _copy(alert: monitor_events.Alert) -> monitor_events.Alert:
    copied = monitor_events.Alert()
    copied.CopyFrom(alert)
    return copied
