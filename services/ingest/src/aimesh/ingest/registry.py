"""The source registry: every version of every source definition, in ingest's SQL database.

Versions are append-only rows ``(name, version) -> definition``; the latest is the current one. A new
version is stored only when it differs from the latest one and passes
``aimesh.ingest.compatibility.breaking_changes``; registering the latest definition again is a no-op
(``changed`` false), so applying the same sources file twice changes nothing. A new source may not
read a topic another source reads. Several replicas may register at once: the primary
key makes one of two racing writers fail, which then re-reads and reports the winner's version or
refuses (``FailedPrecondition``) when the winner stored something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aimesh.core.errors import FailedPrecondition, NotFound
from aimesh.ingest.compatibility import breaking_changes
from aimesh.ingest.schema import source_versions
from aimesh.ingest.sources import SourceDefinition


@dataclass(frozen=True, slots=True)
class StoredSource:
    """A stored version: ``definition.version`` is its version number."""

    definition: SourceDefinition
    create_time: datetime


class SourceRegistry:
    """Source definitions by name and version (see the module doc); every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def register(self, definition: SourceDefinition) -> tuple[StoredSource, bool]:
        """Store ``definition`` as the next version of its source unless it equals the latest one.

        Returns the stored (or unchanged latest) version and whether a new one was stored. Raises
        ``FailedPrecondition`` naming every reason when the change would break existing consumers, or
        when a new source's intake topic is already read by another source.
        """
        try:
            async with self._engine.begin() as conn:
                return await self._register(conn, definition)
        except IntegrityError:
            async with self._engine.connect() as conn:
                winner = await _latest(conn, definition.name)
            if winner is None or _content(winner.definition) != _content(definition):
                version = winner.definition.version if winner else 0
                raise FailedPrecondition(
                    f"source {definition.name} was updated concurrently (now version {version}); "
                    "read it and register again"
                ) from None
            return winner, False

    async def apply(self, definitions: Sequence[SourceDefinition]) -> list[StoredSource]:
        """Register every definition of a sources file (at start); returns the versions that were stored.

        Raises ``FailedPrecondition`` naming the source and the reasons when one of them is a breaking
        change; the definitions registered before it stay stored.
        """
        stored: list[StoredSource] = []
        for definition in definitions:
            version, changed = await self.register(definition)
            if changed:
                stored.append(version)
        return stored

    async def get(self, name: str, version: int = 0) -> StoredSource:
        """The latest (``version`` 0) or the given version of ``name``; raises ``NotFound``."""
        async with self._engine.connect() as conn:
            found = await (_by_version(conn, name, version) if version else _latest(conn, name))
        if found is None:
            what = f"version {version} of source {name}" if version else f"source {name}"
            raise NotFound(f"no {what} is registered")
        return found

    async def current(self) -> list[StoredSource]:
        """The latest version of every source, ordered by name."""
        async with self._engine.connect() as conn:
            return await _current(conn)

    async def _register(self, conn: AsyncConnection, definition: SourceDefinition) -> tuple[StoredSource, bool]:
        latest = await _latest(conn, definition.name)
        version = 1
        if latest is not None:
            if _content(latest.definition) == _content(definition):
                return latest, False
            if reasons := breaking_changes(latest.definition, definition):
                raise FailedPrecondition(
                    f"source {definition.name}: version {latest.definition.version + 1} would break existing "
                    f"consumers: {'; '.join(reasons)}"
                )
            version = latest.definition.version + 1
        else:
            topic = definition.intake_topic
            if clash := next((s for s in await _current(conn) if s.definition.intake_topic == topic), None):
                raise FailedPrecondition(
                    f"source {definition.name}: topic {topic} is already read by source {clash.definition.name}"
                )
        stored = StoredSource(definition.model_copy(update={"version": version}), datetime.now(UTC))
        await conn.execute(
            source_versions.insert().values(
                name=definition.name,
                version=version,
                definition=_content(stored.definition),
                create_time=stored.create_time,
            )
        )
        return stored, True


def _content(definition: SourceDefinition) -> dict[str, Any]:
    return definition.model_dump(mode="json", exclude={"version"})


async def _current(conn: AsyncConnection) -> list[StoredSource]:
    newest = (
        select(source_versions.c.name, func.max(source_versions.c.version).label("version"))
        .group_by(source_versions.c.name)
        .subquery()
    )
    query = (
        select(source_versions)
        .join(
            newest,
            (source_versions.c.name == newest.c.name) & (source_versions.c.version == newest.c.version),
        )
        .order_by(source_versions.c.name)
    )
    rows = (await conn.execute(query)).mappings().all()
    return [_stored(row) for row in rows]


async def _latest(conn: AsyncConnection, name: str) -> StoredSource | None:
    query = (
        select(source_versions)
        .where(source_versions.c.name == name)
        .order_by(source_versions.c.version.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else _stored(row)


async def _by_version(conn: AsyncConnection, name: str, version: int) -> StoredSource | None:
    query = select(source_versions).where(source_versions.c.name == name, source_versions.c.version == version)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else _stored(row)


def _stored(row: Any) -> StoredSource:
    definition = SourceDefinition.model_validate({**row["definition"], "version": row["version"]})
    created: datetime = row["create_time"]
    return StoredSource(definition, created if created.tzinfo else created.replace(tzinfo=UTC))
