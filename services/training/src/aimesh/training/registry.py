"""The model registry: versions, aliases and the alias audit log, traffic policies (each revision kept as
their audit), in SQL; every change emits a ModelEvent.

Events go through the outbox (``aimesh.training.outbox``) in the same transaction as the change, so
they are published after the commit and never lost. Event ids are stable per change
(``registry/<model>/version/<v>``, ``registry/<model>/alias/<alias>/<audit id>``,
``registry/<model>/policy/<revision>``): a re-publish carries the same ``ce_id`` and consumers drop it.

Writes are serialised in-process by a lock; across processes a lost race on a version number, an
alias row or a policy revision surfaces as ``FailedPrecondition`` (alias, policy) or is retried (version).
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
from aimesh.core.fallback import kind_of
from aimesh.core.sql import insert_ignoring_duplicates
from aimesh.training import input_profiles
from aimesh.training.outbox import enqueue
from aimesh.training.paging import Page, timestamp
from aimesh.training.schema import alias_audit, aliases, model_versions, models, traffic_policies
from aimesh.training.traffic_policy import (
    check_policy,
    fallback_columns,
    fallback_of,
    policy_event,
    policy_event_id,
    policy_message,
    same_policy,
)

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
    input_profiles: Sequence[training_pb2.FeatureProfile] = ()


@dataclass(frozen=True)
class AliasedServing:
    """An alias (or a traffic policy's ``canary`` / ``shadow``) and the Triton model version that serves it."""

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
        input_profiles=version.input_profiles,
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
        input_profiles=input_profiles.from_bytes(row.input_profiles),
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
    """Model versions, aliases, traffic policies and their audit in the database behind ``engine``; events
    to ``topic``. ``champion_alias`` is the alias traffic policies split from (``promote`` moves it)."""

    def __init__(self, engine: AsyncEngine, *, topic: str, champion_alias: str = "champion") -> None:
        self._engine = engine
        self._topic = topic
        self._champion_alias = champion_alias
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
                                input_profiles=input_profiles.to_bytes(new.input_profiles),
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
                    return await self._change_alias(
                        conn, model_name, alias, version, actor=actor, reason=reason, expected_version=expected_version
                    )
            except IntegrityError as exc:
                raise FailedPrecondition(f"alias {model_name}@{alias} was changed concurrently; retry") from exc

    async def _change_alias(
        self,
        conn: AsyncConnection,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        expected_version: int | None,
    ) -> training_pb2.AliasChange:
        """``set_alias`` within ``conn``'s transaction (the caller holds the lock)."""
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
        change = training_pb2.AliasChange(
            model_name=model_name,
            alias=alias,
            previous_version=previous,
            new_version=version,
            actor=actor,
            reason=reason,
            time=timestamp(now),
        )
        if previous == version:
            return change
        if current is None:
            await conn.execute(
                aliases.insert().values(model_name=model_name, alias=alias, version=version, update_time=now)
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
        target.aliases.append(alias)
        await enqueue(
            conn,
            topic=self._topic,
            key=model_name,
            message=model_event(events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED, target, change),
            event_id=f"registry/{model_name}/alias/{alias}/{audit_id}",
        )
        return change

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

    async def _current_policy(
        self, conn: AsyncConnection, model_name: str, *, lock: bool
    ) -> training_pb2.TrafficPolicy:
        """The newest policy revision (revision 0 when never set); ``NotFound`` for an unknown model."""
        known = (await conn.execute(select(models.c.name).where(models.c.name == model_name))).scalar_one_or_none()
        if known is None:
            raise NotFound(f"model {model_name!r} does not exist")
        query = (
            select(traffic_policies)
            .where(traffic_policies.c.model_name == model_name)
            .order_by(traffic_policies.c.revision.desc())
            .limit(1)
        )
        row = (await conn.execute(query.with_for_update() if lock else query)).one_or_none()
        return training_pb2.TrafficPolicy(model_name=model_name) if row is None else policy_message(row)

    async def _champion_version(self, conn: AsyncConnection, model_name: str) -> int:
        """The version the champion alias points at; 0 when there is none."""
        version = (
            await conn.execute(
                select(aliases.c.version).where(
                    aliases.c.model_name == model_name, aliases.c.alias == self._champion_alias
                )
            )
        ).scalar_one_or_none()
        return int(version or 0)

    async def _write_policy(
        self, conn: AsyncConnection, current: training_pb2.TrafficPolicy, new: training_pb2.TrafficPolicy
    ) -> training_pb2.TrafficPolicy:
        """Record ``new``'s split, fallback and actor/reason as the revision after ``current``; enqueue its
        event."""
        now = datetime.now(UTC)
        fallback = fallback_of(new)
        recorded = training_pb2.TrafficPolicy(
            model_name=current.model_name,
            revision=current.revision + 1,
            canary_version=new.canary_version,
            canary_weight=new.canary_weight,
            shadow_version=new.shadow_version,
            shadow_share=new.shadow_share,
            fallback=fallback,
            actor=new.actor,
            reason=new.reason,
            time=timestamp(now),
        )
        await conn.execute(
            traffic_policies.insert().values(
                model_name=recorded.model_name,
                revision=recorded.revision,
                canary_version=recorded.canary_version,
                canary_weight=recorded.canary_weight,
                shadow_version=recorded.shadow_version,
                shadow_share=recorded.shadow_share,
                **fallback_columns(fallback),
                actor=recorded.actor,
                reason=recorded.reason,
                time=now,
            )
        )
        await enqueue(
            conn,
            topic=self._topic,
            key=recorded.model_name,
            message=policy_event(recorded),
            event_id=policy_event_id(recorded),
        )
        return recorded

    async def set_traffic_policy(
        self, policy: training_pb2.TrafficPolicy, *, expected_revision: int | None = None
    ) -> training_pb2.TrafficPolicy:
        """Record ``policy`` (its split, fallback, actor and reason) as the model's next revision, announced
        (TRAFFIC_POLICY_CHANGED) in the same transaction; returns the recorded revision.

        ``InvalidArgument`` naming the field for a weight or share outside [0, 1], one above 0 without its
        version, a canary / shadow / fallback version equal to the champion's, or a fallback
        ``aimesh.core.fallback.fallback_problems`` refuses; ``NotFound`` for an unknown model or version;
        ``FailedPrecondition`` naming the current revision when ``expected_revision`` (0: never set) is not
        it. A split and fallback equal to the current ones record nothing and return the current revision.
        """
        check_policy(policy)
        async with self._lock:
            try:
                async with self._engine.begin() as conn:
                    current = await self._current_policy(conn, policy.model_name, lock=True)
                    if expected_revision is not None and expected_revision != current.revision:
                        raise FailedPrecondition(
                            f"the traffic policy of {policy.model_name!r} is at revision {current.revision}, "
                            f"not {expected_revision}"
                        )
                    if same_policy(policy, current):
                        return current
                    champion = await self._champion_version(conn, policy.model_name)
                    named = {"canary_version": policy.canary_version, "shadow_version": policy.shadow_version}
                    if kind_of(policy.fallback) == "previous_version":
                        named["fallback.previous_version.version"] = policy.fallback.previous_version.version
                    for field, number in named.items():
                        if not number:
                            continue
                        await self._load(conn, policy.model_name, number)
                        if number == champion:
                            raise InvalidArgument(
                                f"policy.{field} {number} is the {self._champion_alias} version of "
                                f"{policy.model_name!r}; name another version"
                            )
                    return await self._write_policy(conn, current, policy)
            except IntegrityError as exc:
                raise FailedPrecondition(
                    f"the traffic policy of {policy.model_name!r} was changed concurrently; retry"
                ) from exc

    async def get_traffic_policy(self, model_name: str) -> training_pb2.TrafficPolicy:
        """The current policy (revision 0 with no canary or shadow when never set); ``NotFound`` for an
        unknown model."""
        async with self._engine.connect() as conn:
            return await self._current_policy(conn, model_name, lock=False)

    async def list_traffic_policy_audit(self, model_name: str, page: Page) -> list[training_pb2.TrafficPolicy]:
        """Policy revisions newest first, ``page.limit + 1`` at most (none for an unknown model)."""
        query = (
            select(traffic_policies)
            .where(traffic_policies.c.model_name == model_name)
            .order_by(traffic_policies.c.revision.desc())
            .offset(page.offset)
            .limit(page.limit + 1)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [policy_message(r) for r in rows]

    async def promote(
        self, model_name: str, *, actor: str, reason: str
    ) -> tuple[training_pb2.AliasChange, training_pb2.TrafficPolicy]:
        """Point the champion alias at the canary version (an audited alias change) and record the policy
        without the canary (the shadow kept unless it is the promoted version; the fallback kept, except a
        previous-version fallback naming the promoted version: it then names the former champion), in one
        transaction with both ModelEvents (ALIAS_CHANGED, then TRAFFIC_POLICY_CHANGED).

        ``FailedPrecondition`` when the policy has no canary (or it changed concurrently); ``NotFound`` for
        an unknown model; ``InvalidArgument`` without an actor.
        """
        if not actor:
            raise InvalidArgument("actor is required")
        async with self._lock:
            try:
                async with self._engine.begin() as conn:
                    current = await self._current_policy(conn, model_name, lock=True)
                    promoted = current.canary_version
                    if not promoted:
                        raise FailedPrecondition(
                            f"the traffic policy of {model_name!r} (revision {current.revision}) has no canary "
                            "to promote"
                        )
                    change = await self._change_alias(
                        conn,
                        model_name,
                        self._champion_alias,
                        promoted,
                        actor=actor,
                        reason=reason,
                        expected_version=None,
                    )
                    keep_shadow = current.shadow_version != promoted
                    after = training_pb2.TrafficPolicy(
                        shadow_version=current.shadow_version if keep_shadow else 0,
                        shadow_share=current.shadow_share if keep_shadow else 0.0,
                        fallback=_fallback_after_promotion(fallback_of(current), promoted, change.previous_version),
                        actor=actor,
                        reason=reason,
                    )
                    return change, await self._write_policy(conn, current, after)
            except IntegrityError as exc:
                raise FailedPrecondition(f"the registry of {model_name!r} was changed concurrently; retry") from exc

    async def rollback(self, model_name: str, *, actor: str, reason: str) -> training_pb2.TrafficPolicy:
        """Record the policy without canary and shadow (the champion takes all traffic; the fallback kept)
        and announce it.

        Nothing to clear (no canary, no shadow; a fallback alone stays): the current policy, unchanged (no
        revision, no event). ``NotFound`` for an unknown model; ``InvalidArgument`` without an actor;
        ``FailedPrecondition`` on a concurrent change.
        """
        if not actor:
            raise InvalidArgument("actor is required")
        async with self._lock:
            try:
                async with self._engine.begin() as conn:
                    current = await self._current_policy(conn, model_name, lock=True)
                    if not current.canary_version and not current.shadow_version:
                        return current
                    kept = training_pb2.TrafficPolicy(fallback=fallback_of(current), actor=actor, reason=reason)
                    return await self._write_policy(conn, current, kept)
            except IntegrityError as exc:
                raise FailedPrecondition(
                    f"the traffic policy of {model_name!r} was changed concurrently; retry"
                ) from exc

    async def policy_serving(self) -> list[AliasedServing]:
        """The canary and shadow versions of every model's current policy (``alias`` ``canary`` / ``shadow``)
        with the Triton model version behind each, ordered by (model, alias)."""
        newest = (
            select(traffic_policies.c.model_name, func.max(traffic_policies.c.revision).label("revision"))
            .group_by(traffic_policies.c.model_name)
            .subquery()
        )
        query = select(
            traffic_policies.c.model_name, traffic_policies.c.canary_version, traffic_policies.c.shadow_version
        ).join(
            newest,
            (newest.c.model_name == traffic_policies.c.model_name) & (newest.c.revision == traffic_policies.c.revision),
        )
        async with self._engine.connect() as conn:
            wanted = [
                (r.model_name, route, int(number))
                for r in (await conn.execute(query)).all()
                for route, number in (("canary", r.canary_version), ("shadow", r.shadow_version))
                if number
            ]
            served: list[AliasedServing] = []
            for model_name, route, number in wanted:
                version = await self._load(conn, model_name, number)
                served.append(
                    AliasedServing(
                        model_name=model_name,
                        alias=route,
                        version=number,
                        triton_model_name=version.triton_model_name,
                        triton_model_version=version.triton_model_version,
                    )
                )
        return sorted(served, key=lambda s: (s.model_name, s.alias))


def _fallback_after_promotion(
    fallback: training_pb2.Fallback | None, promoted: int, former: int
) -> training_pb2.Fallback | None:
    """The fallback a promotion of ``promoted`` (champion before: ``former``, 0 for none) leaves: the same,
    except a previous-version fallback naming ``promoted``, which then names ``former`` (none without one)."""
    if fallback is None or kind_of(fallback) != "previous_version" or fallback.previous_version.version != promoted:
        return fallback
    if not former:
        return None
    return training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=former))
