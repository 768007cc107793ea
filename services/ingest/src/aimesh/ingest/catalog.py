"""The sources the running service validates against: the registry's current versions, with validators.

``SourceCatalog`` is what the Kafka pipeline and the push API ask for a source's current definition
and validator. It holds an in-memory snapshot (lookups are dictionary reads, safe on the hot path) that
``refresh()`` replaces from the registry: the API refreshes right after it stored a new version, and
``run()`` refreshes every few seconds so the versions other replicas stored are picked up too.
Validators are rebuilt only for sources whose version changed.

Deployment topic overrides (``INGEST_SOURCE_TOPICS``) are applied here, never stored in the registry;
an override may name a source that is not registered yet and applies once it is.

Runtime onboarding: ``topics`` is the ingest consumer's topics provider (``EventConsumer(topics_provider=)``),
asked before every poll. A source registered (or updated) through this replica is validated, pushable
and subscribed to at once; one registered through another replica after this replica's next refresh,
so within ``INGEST_REGISTRY_REFRESH_SECONDS``, plus the consumer group's rebalance. A new intake topic
is read from its earliest offset (the group has none committed), so a record ``IngestService.Publish``
accepted for a source this replica knows reaches the canonical topic and the lake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aimesh.core.errors import NotFound
from aimesh.core.periodic import PeriodicRefresh
from aimesh.ingest.field_checks import EventTimeBounds
from aimesh.ingest.pii import PanMasker, Tokenizer
from aimesh.ingest.registry import StoredSource
from aimesh.ingest.sources import SourceDefinition
from aimesh.ingest.validation import Validator

log = logging.getLogger(__name__)


class CurrentVersions(Protocol):
    """Where the catalog reads the current versions from (``aimesh.ingest.registry.SourceRegistry``)."""

    async def current(self) -> list[StoredSource]:
        """The latest version of every source; raises when the store cannot be read."""
        ...


@dataclass(frozen=True, slots=True)
class ActiveSource:
    """The current version of one source and the validator built from it."""

    definition: SourceDefinition
    validator: Validator


class SourceCatalog:
    """Current source versions by name and by intake topic (see the module doc)."""

    def __init__(
        self,
        registry: CurrentVersions,
        tokenizer: Tokenizer,
        *,
        topic_overrides: Mapping[str, str] | None = None,
        max_payload_bytes: int = 1024 * 1024,
        event_time_bounds: EventTimeBounds | None = None,
    ) -> None:
        """Validators are built with ``tokenizer``, ``max_payload_bytes`` and ``event_time_bounds`` (the
        service's plausibility bounds; each source's overrides apply on top)."""
        self._registry = registry
        self._tokenizer = tokenizer
        self.masker = PanMasker(tokenizer)
        """Tokenises PANs in what is kept outside a validator (headers, payloads of unknown sources)."""
        self._event_time_bounds = event_time_bounds
        self._overrides = dict(topic_overrides or {})
        self._max_payload_bytes = max_payload_bytes
        self._by_name: dict[str, ActiveSource] = {}
        self._by_topic: dict[str, ActiveSource] = {}
        self._topics: tuple[str, ...] = ()
        self._periodic = PeriodicRefresh(
            self.refresh, lambda: "source registry refresh failed; keeping the current versions", log
        )

    async def refresh(self) -> None:
        """Load the registry's current versions; raises what the registry raised (nothing changes then)."""
        stored = await self._registry.current()
        by_name: dict[str, ActiveSource] = {}
        for entry in stored:
            definition = entry.definition
            if definition.name in self._overrides:
                definition = definition.model_copy(update={"topic": self._overrides[definition.name]})
            known = self._by_name.get(definition.name)
            if known is not None and known.definition == definition:
                by_name[definition.name] = known
                continue
            log.info(
                "source updated" if known is not None else "source added",
                extra={
                    "ingest.source": definition.name,
                    "ingest.version": definition.version,
                    "ingest.topic": definition.intake_topic,
                },
            )
            validator = Validator(
                definition,
                self._tokenizer,
                max_payload_bytes=self._max_payload_bytes,
                event_time_bounds=self._event_time_bounds,
            )
            by_name[definition.name] = ActiveSource(definition, validator)
        by_topic: dict[str, ActiveSource] = {}
        for active in by_name.values():
            topic = active.definition.intake_topic
            if (other := by_topic.get(topic)) is not None:
                log.error(
                    "two sources read the same topic; keeping the first (fix INGEST_SOURCE_TOPICS)",
                    extra={
                        "ingest.topic": topic,
                        "ingest.source": active.definition.name,
                        "ingest.kept": other.definition.name,
                    },
                )
                continue
            by_topic[topic] = active
        self._by_name = by_name
        self._by_topic = by_topic
        self._topics = tuple(sorted(by_topic))

    def current(self, source: str) -> ActiveSource:
        """The current version of ``source``; raises ``NotFound`` naming the known sources."""
        found = self._by_name.get(source)
        if found is None:
            raise NotFound(f"unknown source {source!r}; known sources: {sorted(self._by_name) or 'none'}")
        return found

    def for_topic(self, topic: str) -> ActiveSource | None:
        """The source whose intake topic (upstream or push) is ``topic``, if any."""
        return self._by_topic.get(topic)

    @property
    def topics(self) -> tuple[str, ...]:
        """The intake topics of every source, sorted: the ingest consumer's topics provider (a snapshot read)."""
        return self._topics

    @property
    def names(self) -> list[str]:
        """The names of every current source, sorted."""
        return sorted(self._by_name)

    @property
    def pending_overrides(self) -> list[str]:
        """Sources named in the topic overrides that are not registered (yet)."""
        return sorted(set(self._overrides) - set(self._by_name))

    async def run(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds until ``stop()``; a failed refresh is logged and retried."""
        await self._periodic.run(interval_s)

    async def stop(self) -> None:
        """Make ``run()`` return."""
        self._periodic.stop()
