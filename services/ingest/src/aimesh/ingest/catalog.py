"""The sources the running service validates against: the registry's current versions, with validators.

``SourceCatalog`` is what the Kafka pipeline and the push API ask for a source's current definition
and validator. It holds an in-memory snapshot (lookups are dictionary reads, safe on the hot path) that
``refresh()`` replaces from the registry: the API refreshes right after it stored a new version, and
``run()`` refreshes every few seconds so the versions other replicas stored are picked up too.
Validators are rebuilt only for sources whose version changed.

Deployment topic overrides (``INGEST_SOURCE_TOPICS``) are applied here, never stored in the registry.
A source registered while the service runs is validated and pushable at once, but its upstream topic
is consumed only after a restart (the consumer's subscription is fixed at start).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aimesh.core.errors import NotFound
from aimesh.core.periodic import PeriodicRefresh
from aimesh.ingest.pii import Tokenizer
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
    ) -> None:
        self._registry = registry
        self._tokenizer = tokenizer
        self._overrides = dict(topic_overrides or {})
        self._max_payload_bytes = max_payload_bytes
        self._by_name: dict[str, ActiveSource] = {}
        self._by_topic: dict[str, ActiveSource] = {}
        self._periodic = PeriodicRefresh(
            self.refresh, lambda: "source registry refresh failed; keeping the current versions", log
        )

    async def refresh(self) -> None:
        """Load the registry's current versions; raises ``ValueError`` when an override names no source."""
        stored = await self._registry.current()
        if unknown := set(self._overrides) - {s.definition.name for s in stored}:
            raise ValueError(f"topic overrides name unknown sources: {sorted(unknown)}")
        by_name: dict[str, ActiveSource] = {}
        for entry in stored:
            definition = entry.definition
            if definition.name in self._overrides:
                definition = definition.model_copy(update={"topic": self._overrides[definition.name]})
            known = self._by_name.get(definition.name)
            if known is not None and known.definition == definition:
                by_name[definition.name] = known
                continue
            if known is not None:
                log.info(
                    "source updated",
                    extra={"ingest.source": definition.name, "ingest.version": definition.version},
                )
            validator = Validator(definition, self._tokenizer, max_payload_bytes=self._max_payload_bytes)
            by_name[definition.name] = ActiveSource(definition, validator)
        self._by_name = by_name
        self._by_topic = {a.definition.intake_topic: a for a in by_name.values()}

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
    def topics(self) -> list[str]:
        """The intake topics of every source (what the ingest consumer subscribes to)."""
        return sorted(self._by_topic)

    async def run(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds until ``stop()``; a failed refresh is logged and retried."""
        await self._periodic.run(interval_s)

    async def stop(self) -> None:
        """Make ``run()`` return."""
        self._periodic.stop()
