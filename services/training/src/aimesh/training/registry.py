"""The model registry: versions, aliases and the alias audit log, in SQL; every change emits a ModelEvent.

Events go through the outbox (``aimesh.training.outbox``) in the same transaction as the change, so
they are published after the commit and never lost. Event ids are stable per change
(``registry/<model>/version/<v>``, ``registry/<model>/alias/<alias>/<audit id>``): a re-publish
carries the same ``ce_id`` and consumers drop it.

Writes are serialised in-process by a lock; across processes a lost race on a version number or an
alias row surfaces as ``FailedPrecondition`` (alias) or is retried (version).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound
from aimesh.core.sql import insert_ignoring_duplicates
from aimesh.training.outbox import enqueue
from aimesh.training.paging import Page, timestamp
from aimesh.training.schema import alias_audit, aliases, model_versions, models

ALIAS_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
_VERSION_RACE_RETRIES = 3

Exporter = Callable[[int], Awaitable[str]]
"""Exports the artifact as the given version number; returns its URI. Must be safe to repeat."""


@dataclass(frozen=True)
class NewVersion:
    """What a registration records (the version number is assigned by the registry)."""

    model_name: str
    run_id: str
    features: list[str]
    feature_service: str
    metrics: dict[str, float]
    reference_profile: training_pb2.ScoreProfile
    triton_model_name: str
    signature: signature_pb2.ModelSignature


@dataclass(frozen=True)
class AliasedServing:
    """An alias and the Triton model version that serves it."""

    model_name: str
    alias: str
    version: int
    triton_model_name: str
    triton_model_version: int


def model_event(
    kind: events_pb2.ModelEventKind,
    version: training_pb2.ModelVersion,
    change: training_pb2.AliasChange | None = None,
) -> events_pb2.ModelEvent:
    """The ModelEvent announcing ``version`` (registered) or ``change`` (alias moved to ``version``)."""
    event = events_pb2.ModelEvent(
        kind=kind,
        model_name=version.model_name,
        version=version.version,
        triton_model_name=version.triton_model_name,
        triton_model_version=version.triton_model_version,
        features=list(version.features),
        feature_service=version.feature_service,
        reference_profile=version.reference_profile,
        signature=version.signature,
        time=change.time if change is not None else version.create_time,
    )
    if change is not None:
        event.alias_change.CopyFrom(change)
    return event


def _version_message(row: Any, alias_names: Sequence[str]) -> training_pb2.ModelVersion:
    profile = training_pb2.ScoreProfile()
    profile.ParseFromString(row.reference_profile)
    signature = signature_pb2.ModelSignature()
    signature.ParseFromString(row.signature or b"")
    return training_pb2.ModelVersion(
        model_name=row.model_name,
        version=row.version,
        run_id=row.run_id,
        features=list(row.features),
        feature_service=row.feature_service,
        triton_model_name=row.triton_model_name,
        triton_model_version=row.triton_model_version,
        artifact_uri=row.artifact_uri,
        metrics={str(k): float(v) for k, v in row.metrics.items()},
        create_time=timestamp(row.create_time),
        aliases=sorted(alias_names),
        reference_profile=profile,
        signature=signature,
    )


def _change_message(row: Any) -> training_pb2.AliasChange:
    return training_pb2.AliasChange(
        model_name=row.model_name,
        alias=row.alias,
        previous_version=row.previous_version,
        new_version=row.new_version,
        actor=row.actor,
        reason=row.reason,
        time=timestamp(row.time),
    )


class Registry:
    """Model versions, aliases and their audit in the database behind ``engine``; events to ``topic``."""

    def __init__(self, engine: AsyncEngine, *, topic: str) -> None:
        self._engine = engine
        self._topic = topic
        self._lock = asyncio.Lock()

    async def _aliases_of(self, conn: AsyncConnection, model_name: str, version: int) -> list[str]:
        rows = await conn.execute(
            select(aliases.c.alias).where(aliases.c.model_name == model_name, aliases.c.version == version)
        )
        return [r.alias for r in rows]

    async def _load(self, conn: AsyncConnection, model_name: str, version: int) -> training_pb2.ModelVersion:
        row = (
            await conn.execute(
                select(model_versions).where(
                    model_versions.c.model_name == model_name, model_versions.c.version == version
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"model {model_name!r} has no version {version}")
        return _version_message(row, await self._aliases_of(conn, model_name, version))

    async def _by_run(self, conn: AsyncConnection, model_name: str, run_id: str) -> training_pb2.ModelVersion | None:
        version = (
            await conn.execute(
                select(model_versions.c.version).where(
                    model_versions.c.model_name == model_name, model_versions.c.run_id == run_id
                )
            )
        ).scalar_one_or_none()
        return None if version is None else await self._load(conn, model_name, int(version))

    async def register(self, new: NewVersion, export: Exporter) -> tuple[training_pb2.ModelVersion, bool]:
        """Register ``new`` as the next version (exporting it first); returns (version, created).

        Idempotent per (model, run): a repeat returns the existing version with ``created=False`` and
        exports nothing. The VERSION_REGISTERED event is committed with the row.
        """
        async with self._lock:
            for _attempt in range(_VERSION_RACE_RETRIES):
                async with self._engine.connect() as conn:
                    existing = await self._by_run(conn, new.model_name, new.run_id)
                    if existing is not None:
                        return existing, False
                    latest = (
                        await conn.execute(
                            select(func.max(model_versions.c.version)).where(
                                model_versions.c.model_name == new.model_name
                            )
                        )
                    ).scalar_one_or_none()
                number = int(latest or 0) + 1
                artifact_uri = await export(number)
                now = datetime.now(UTC)
                try:
                    async with self._engine.begin() as conn:
                        await insert_ignoring_duplicates(conn, models, [{"name": new.model_name, "create_time": now}])
                        await conn.execute(
                            model_versions.insert().values(
                                model_name=new.model_name,
                                version=number,
                                run_id=new.run_id,
                                features=list(new.features),
                                feature_service=new.feature_service,
                                metrics=dict(new.metrics),
                                reference_profile=new.reference_profile.SerializeToString(),
                                artifact_uri=artifact_uri,
                                triton_model_name=new.triton_model_name,
                                triton_model_version=number,
                                create_time=now,
                                signature=new.signature.SerializeToString(),
                            )
                        )
                        version = await self._load(conn, new.model_name, number)
                        await enqueue(
                            conn,
                            topic=self._topic,
                            key=new.model_name,
                            message=model_event(events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED, version),
                            event_id=f"registry/{new.model_name}/version/{number}",
                        )
                    return version, True
                except IntegrityError:
                    continue  # another registry process took this number (or registered this run): look again
            raise FailedPrecondition(f"could not allocate a version of {new.model_name!r}: concurrent registrations")

    async def triton_owner(self, triton_model_name: str) -> str | None:
        """The registered model whose versions Triton serves as ``triton_model_name``, or None."""
        async with self._engine.connect() as conn:
            owner = (
                await conn.execute(
                    select(model_versions.c.model_name)
                    .where(model_versions.c.triton_model_name == triton_model_name)
                    .limit(1)
                )
            ).scalar_one_or_none()
        return None if owner is None else str(owner)

    async def get_version(self, model_name: str, version: int) -> training_pb2.ModelVersion:
        """One version with its aliases; ``NotFound`` when absent."""
        async with self._engine.connect() as conn:
            return await self._load(conn, model_name, version)

    async def version_for_run(self, model_name: str, run_id: str) -> training_pb2.ModelVersion | None:
        """The version registered from ``run_id``, if any."""
        async with self._engine.connect() as conn:
            return await self._by_run(conn, model_name, run_id)

    async def list_versions(self, model_name: str, page: Page) -> list[training_pb2.ModelVersion]:
        """Versions newest first, ``page.limit + 1`` at most (the extra one signals a next page)."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(model_versions)
                    .where(model_versions.c.model_name == model_name)
                    .order_by(model_versions.c.version.desc())
                    .offset(page.offset)
                    .limit(page.limit + 1)
                )
            ).all()
            alias_rows = (await conn.execute(select(aliases).where(aliases.c.model_name == model_name))).all()
        by_version: dict[int, list[str]] = {}
        for a in alias_rows:
            by_version.setdefault(int(a.version), []).append(a.alias)
        return [_version_message(r, by_version.get(int(r.version), [])) for r in rows]

    async def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> training_pb2.AliasChange:
        """Point ``alias`` at ``version``; audited and announced (ALIAS_CHANGED) in one transaction.

        ``expected_version`` (compare-and-set): the alias must currently point there (0: must not exist),
        else ``FailedPrecondition``. Unknown version: ``NotFound``. Already there: returns a change with
        ``previous_version == new_version`` and records nothing.
        """
        if not ALIAS_PATTERN.fullmatch(alias):
            raise InvalidArgument(f"alias {alias!r} must match [a-z0-9_-]+ (at most 64 characters)")
        if not actor:
            raise InvalidArgument("actor is required")
        async with self._lock:
            try:
                async with self._engine.begin() as conn:
                    target = await self._load(conn, model_name, version)
                    current = (
                        await conn.execute(
                            select(aliases.c.version)
                            .where(aliases.c.model_name == model_name, aliases.c.alias == alias)
                            .with_for_update()
                        )
                    ).scalar_one_or_none()
                    previous = int(current or 0)
                    if expected_version is not None and expected_version != previous:
                        raise FailedPrecondition(
                            f"alias {model_name}@{alias} points at {previous or 'nothing'}, not {expected_version}"
                        )
                    now = datetime.now(UTC)
                    if previous == version:
                        return training_pb2.AliasChange(
                            model_name=model_name,
                            alias=alias,
                            previous_version=previous,
                            new_version=version,
                            actor=actor,
                            reason=reason,
                            time=timestamp(now),
                        )
                    if current is None:
                        await conn.execute(
                            aliases.insert().values(
                                model_name=model_name, alias=alias, version=version, update_time=now
                            )
                        )
                    else:
                        await conn.execute(
                            aliases.update()
                            .where(aliases.c.model_name == model_name, aliases.c.alias == alias)
                            .values(version=version, update_time=now)
                        )
                    inserted = await conn.execute(
                        alias_audit.insert()
                        .values(
                            model_name=model_name,
                            alias=alias,
                            previous_version=previous,
                            new_version=version,
                            actor=actor,
                            reason=reason,
                            time=now,
                        )
                        .returning(alias_audit.c.id)
                    )
                    audit_id = int(inserted.scalar_one())
                    change = training_pb2.AliasChange(
                        model_name=model_name,
                        alias=alias,
                        previous_version=previous,
                        new_version=version,
                        actor=actor,
                        reason=reason,
                        time=timestamp(now),
                    )
                    target.aliases.append(alias)
                    await enqueue(
                        conn,
                        topic=self._topic,
                        key=model_name,
                        message=model_event(events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED, target, change),
                        event_id=f"registry/{model_name}/alias/{alias}/{audit_id}",
                    )
                    return change
            except IntegrityError as exc:
                raise FailedPrecondition(f"alias {model_name}@{alias} was changed concurrently; retry") from exc

    async def get_alias(self, model_name: str, alias: str) -> training_pb2.ModelVersion:
        """The version ``alias`` points at; ``NotFound`` when the alias does not exist."""
        async with self._engine.connect() as conn:
            version = (
                await conn.execute(
                    select(aliases.c.version).where(aliases.c.model_name == model_name, aliases.c.alias == alias)
                )
            ).scalar_one_or_none()
            if version is None:
                raise NotFound(f"model {model_name!r} has no alias {alias!r}")
            return await self._load(conn, model_name, int(version))

    async def aliased_serving(self) -> list[AliasedServing]:
        """Every alias of every model with the Triton model version behind it, ordered by (model, alias)."""
        query = (
            select(
                aliases.c.model_name,
                aliases.c.alias,
                aliases.c.version,
                model_versions.c.triton_model_name,
                model_versions.c.triton_model_version,
            )
            .join(
                model_versions,
                (model_versions.c.model_name == aliases.c.model_name) & (model_versions.c.version == aliases.c.version),
            )
            .order_by(aliases.c.model_name, aliases.c.alias)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AliasedServing(
                model_name=r.model_name,
                alias=r.alias,
                version=int(r.version),
                triton_model_name=r.triton_model_name,
                triton_model_version=int(r.triton_model_version),
            )
            for r in rows
        ]

    async def list_audit(self, model_name: str, alias: str, page: Page) -> list[training_pb2.AliasChange]:
        """Alias changes newest first (only ``alias`` when set), ``page.limit + 1`` at most."""
        query = select(alias_audit).where(alias_audit.c.model_name == model_name)
        if alias:
            query = query.where(alias_audit.c.alias == alias)
        query = query.order_by(alias_audit.c.id.desc()).offset(page.offset).limit(page.limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_change_message(r) for r in rows]
