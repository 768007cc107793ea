"""The definitions registry in SQL: every version of every definition, ``apply`` with diff and breaking-change checks.

``apply`` runs in one database transaction: it reads the latest versions, validates the request's
references against them, classifies each requested definition as created / updated / unchanged, and
refuses (FailedPrecondition, nothing stored) when a change would alter what a stored version promises:

- a feature whose aggregation, field, window or expression changes;
- a transformation whose expression changes while a feature reads it;
- a view whose entity or source changes; an entity whose key changes while a view uses it;
- a feature removed while a feature service (explicitly or by ``<view>:*``) or an on-demand
  expression references it;
- a new stream-fed feature whose name a stored on-demand expression uses: the bare name would become
  ambiguous (it means one feature now) or would stop meaning a request-context field.

Every other change (new features, ttl, descriptions, services) stores a new version.

Applies are serialised across processes: each first updates the one row of ``schema.registry``, so a
concurrent apply waits for the row lock (PostgreSQL) or the write lock (SQLite) and is then validated
against the versions the first one stored. That row's ``generation`` grows with every apply that
stores something (an apply that stores nothing rolls back), which is what replicas poll
(``newer_than``) to notice definitions applied elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aimesh.core.errors import Aborted, FailedPrecondition
from aimesh.feature import schema
from aimesh.feature.definitions.registry import Registry
from aimesh.feature.definitions.specs import (
    EntitySpec,
    FeatureRepo,
    FeatureServiceSpec,
    FeatureViewSpec,
    check_references,
    format_duration,
    stream_features_named,
)
from aimesh.feature.schema import upsert_row

ENTITY, VIEW, SERVICE = "entity", "feature_view", "feature_service"
_MODELS: dict[str, type[EntitySpec | FeatureViewSpec | FeatureServiceSpec]] = {
    ENTITY: EntitySpec,
    VIEW: FeatureViewSpec,
    SERVICE: FeatureServiceSpec,
}


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Change:
    """What apply did (or would do) to one definition; ``detail`` says what changed."""

    kind: str
    name: str
    action: Action
    version: int
    detail: str = ""


@dataclass(frozen=True)
class ApplyOutcome:
    """The changes in request order and the registry after them (unchanged on a dry run), with the
    registry generation that registry reflects."""

    changes: list[Change]
    registry: Registry
    generation: int


def _spec(model: EntitySpec | FeatureViewSpec | FeatureServiceSpec) -> dict[str, Any]:
    return model.model_dump(mode="json")


def layout_key(view: FeatureViewSpec) -> str:
    """A stable text of the view's storage layout (what a backfill was done for)."""
    return orjson.dumps(view.storage_layout(), default=str).decode()


def _referenced(merged: FeatureRepo, old: FeatureViewSpec) -> dict[str, list[str]]:
    """Feature name of ``old`` -> who references it (services, on-demand features)."""
    users: dict[str, list[str]] = {}
    names = {f.name for f in old.features}
    for service in merged.feature_services:
        for ref in service.features:
            view_name, _, feature_name = ref.partition(":")
            if view_name != old.name:
                continue
            for name in names if feature_name == "*" else {feature_name} & names:
                users.setdefault(name, []).append(f"feature service {service.name}")
    for view in merged.feature_views:
        if view.on_demand:
            for feature in view.features:
                for name in feature.compiled.names & names:
                    users.setdefault(name, []).append(f"on-demand feature {view.name}:{feature.name}")
    return users


def _view_breaks(old: FeatureViewSpec, new: FeatureViewSpec, merged: FeatureRepo) -> list[str]:
    where = f"feature_view {old.name}"
    problems = []
    if (old.entity, old.source) != (new.entity, new.source):
        problems.append(f"{where}: entity/source {old.entity}/{old.source} -> {new.entity}/{new.source}")
    new_features = {f.name: f for f in new.features}
    users = _referenced(merged, old)
    for feature in old.features:
        after = new_features.get(feature.name)
        if after is None:
            if feature.name in users:
                problems.append(
                    f"{where}: feature {feature.name} removed but referenced by {', '.join(users[feature.name])}"
                )
        elif after.behaviour() != feature.behaviour():
            problems.append(
                f"{where}: feature {feature.name} changes its computation "
                f"({_describe(feature.behaviour())} -> {_describe(after.behaviour())})"
            )
    read = {f.field for f in new.features}
    new_transformations = {t.name: t.expression for t in new.transformations}
    for transformation in old.transformations:
        after_expr = new_transformations.get(transformation.name)
        if transformation.name in read and after_expr != transformation.expression:
            change = f"{transformation.expression!r} -> {after_expr!r}"
            problems.append(f"{where}: transformation {transformation.name} changes ({change})")
    return problems


def _on_demand_breaks(old: FeatureRepo, merged: FeatureRepo) -> list[str]:
    """Stored on-demand features (same expression before and after) whose bare names new stream-fed
    features would capture: a name would become ambiguous, or would stop meaning a request-context field.

    Removing a feature such a name means is reported by ``_view_breaks``; views are never removed.
    """
    problems = []
    after_views = {v.name: v for v in merged.feature_views}
    for view in old.feature_views:
        if not view.on_demand:
            continue
        kept = {f.name: f.expression for f in after_views[view.name].features}
        for feature in view.features:
            if kept.get(feature.name) != feature.expression:
                continue  # removed or changed: judged as a change of the view itself
            where = f"on-demand feature {view.name}:{feature.name}"
            for name in sorted(feature.compiled.names):
                before, after = stream_features_named(old, name), stream_features_named(merged, name)
                if set(after) <= set(before):
                    continue
                if len(after) > 1:
                    views = ", ".join(ref.partition(":")[0] for ref in after)
                    problems.append(f"{where}: {name!r} would be ambiguous, defined by feature views {views}")
                elif not before:
                    problems.append(f"{where}: {name!r} is a request-context field and would become {after[0]}")
    return problems


def _describe(behaviour: tuple[object, ...]) -> str:
    agg, field, window, expression, n, list_type = behaviour
    parts = [str(agg)]
    if field:
        parts.append(f"field={field}")
    if isinstance(window, timedelta):
        parts.append(f"window={format_duration(window)}")
    if expression:
        parts.append(f"expression={expression!r}")
    if n is not None:
        parts.append(f"n={n} dtype={list_type}")
    return " ".join(parts)


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> str:
    return ", ".join(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


class DefinitionStore:
    """Versioned definitions over an async engine (tables of ``schema``; migrated by the online store)."""

    def __init__(self, engine: AsyncEngine, clock_us: Any = None) -> None:
        self.engine = engine
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)

    async def latest(self) -> Registry:
        """The registry of the latest version of every stored definition."""
        async with self.engine.connect() as conn:
            return await self._latest(conn)

    async def newer_than(self, generation: int) -> tuple[int, Registry] | None:
        """The stored registry and its generation when that is above ``generation``, else None.

        Costs one primary-key read when nothing changed. The generation is read before the definitions,
        so the registry returned is never older than the generation it is returned with.
        """
        async with self.engine.connect() as conn:
            stored = await _generation(conn)
            if stored <= generation:
                return None
            return stored, await self._latest(conn)

    @staticmethod
    async def _latest(conn: AsyncConnection) -> Registry:
        d = schema.definitions
        newest = (
            select(d.c.kind, d.c.name, func.max(d.c.version).label("version")).group_by(d.c.kind, d.c.name).subquery()
        )
        rows = (
            await conn.execute(
                select(d.c.kind, d.c.name, d.c.version, d.c.spec)
                .join(
                    newest,
                    (d.c.kind == newest.c.kind) & (d.c.name == newest.c.name) & (d.c.version == newest.c.version),
                )
                .order_by(d.c.kind, d.c.name)
            )
        ).all()
        parts: dict[str, list[Any]] = {ENTITY: [], VIEW: [], SERVICE: []}
        versions: dict[tuple[str, str], int] = {}
        for kind, name, version, spec in rows:
            parts[kind].append(_MODELS[kind].model_validate(orjson.loads(spec)))
            versions[(kind, name)] = int(version)
        repo = FeatureRepo(entities=parts[ENTITY], feature_views=parts[VIEW], feature_services=parts[SERVICE])
        return Registry(repo, versions)

    async def apply(self, request: FeatureRepo, *, dry_run: bool = False) -> ApplyOutcome:
        """Store the request's definitions as new versions where they differ (atomically).

        Waits for a concurrent apply to finish (see the module doc), then raises InvalidArgument for
        unresolvable references, FailedPrecondition listing every breaking change (nothing is stored
        then). A dry run validates and reports without storing. Raises Aborted, naming the definitions,
        when a version it would store was stored meanwhile by a writer that does not take the registry
        lock (a replica of a release before it); nothing is stored then and retrying is safe.
        """
        attempted: list[Change] = []
        try:
            async with self.engine.connect() as conn, conn.begin() as transaction:
                generation = await _lock_registry(conn)
                current = await self._latest(conn)
                merged = request.merged_over(current.repo)
                check_references(request, merged)
                changes, problems = self._diff(current, request, merged)
                problems += _on_demand_breaks(current.repo, merged)
                if problems:
                    raise FailedPrecondition(
                        "breaking changes to definitions in use refused (give the changed definition a new name "
                        "instead): " + "; ".join(problems)
                    )
                attempted = [] if dry_run else [c for c in changes if c.action is not Action.UNCHANGED]
                if attempted:
                    await self._store(conn, request, attempted)
                else:
                    await transaction.rollback()  # the generation stays: nothing changed
                    generation -= 1
        except IntegrityError as exc:
            raise Aborted(await self._collision(attempted)) from exc
        if not attempted:
            return ApplyOutcome(changes, current, generation)
        versions = dict(current.versions)
        versions.update({(c.kind, c.name): c.version for c in changes})
        return ApplyOutcome(changes, Registry(merged, versions), generation)

    async def _collision(self, attempted: list[Change]) -> str:
        """What an apply that hit a unique-key violation collided with, for its Aborted message."""
        d = schema.definitions
        async with self.engine.connect() as conn:
            stored = {
                (kind, name): int(version)
                for kind, name, version in (
                    await conn.execute(select(d.c.kind, d.c.name, func.max(d.c.version)).group_by(d.c.kind, d.c.name))
                ).all()
            }
        taken = [c for c in attempted if stored.get((c.kind, c.name), 0) >= c.version] or attempted
        names = ", ".join(f"{c.kind} {c.name} (version {c.version} now stored by another writer)" for c in taken)
        return f"definitions changed concurrently: {names}; nothing was stored, apply again (it is checked anew)"

    @staticmethod
    def _diff(current: Registry, request: FeatureRepo, merged: FeatureRepo) -> tuple[list[Change], list[str]]:
        changes: list[Change] = []
        problems: list[str] = []
        old_repo = current.repo
        olds: dict[str, dict[str, Any]] = {
            ENTITY: {e.name: e for e in old_repo.entities},
            VIEW: {v.name: v for v in old_repo.feature_views},
            SERVICE: {s.name: s for s in old_repo.feature_services},
        }
        items: Sequence[tuple[str, EntitySpec | FeatureViewSpec | FeatureServiceSpec]] = [
            *((ENTITY, e) for e in request.entities),
            *((VIEW, v) for v in request.feature_views),
            *((SERVICE, s) for s in request.feature_services),
        ]
        for kind, new in items:
            old = olds[kind].get(new.name)
            version = current.versions.get((kind, new.name), 0)
            if old is None:
                changes.append(Change(kind, new.name, Action.CREATED, 1))
                continue
            before, after = _spec(old), _spec(new)
            if before == after:
                changes.append(Change(kind, new.name, Action.UNCHANGED, version))
                continue
            changes.append(Change(kind, new.name, Action.UPDATED, version + 1, _changed_fields(before, after)))
            if isinstance(old, FeatureViewSpec) and isinstance(new, FeatureViewSpec):
                problems += _view_breaks(old, new, merged)
            elif isinstance(old, EntitySpec) and isinstance(new, EntitySpec) and old.key != new.key:
                users = [v.name for v in merged.feature_views if v.entity == old.name]
                if users:
                    problems.append(
                        f"entity {old.name}: key {old.key} -> {new.key} while views use it: {', '.join(users)}"
                    )
        return changes, problems

    async def _store(self, conn: AsyncConnection, request: FeatureRepo, changes: list[Change]) -> None:
        """Insert a row for each of ``changes`` (created or updated definitions of ``request``)."""
        specs: dict[tuple[str, str], EntitySpec | FeatureViewSpec | FeatureServiceSpec] = {
            **{(ENTITY, e.name): e for e in request.entities},
            **{(VIEW, v.name): v for v in request.feature_views},
            **{(SERVICE, s.name): s for s in request.feature_services},
        }
        now = self._clock_us()
        rows = [
            {
                "kind": c.kind,
                "name": c.name,
                "version": c.version,
                "spec": orjson.dumps(_spec(specs[(c.kind, c.name)])).decode(),
                "created_at_us": now,
            }
            for c in changes
        ]
        await conn.execute(schema.definitions.insert(), rows)

    async def views_needing_backfill(self, registry: Registry) -> list[str]:
        """Stream-fed views whose online state was never backfilled for their current storage layout."""
        b = schema.backfills
        async with self.engine.connect() as conn:
            done = {r.view: r.layout for r in (await conn.execute(select(b.c.view, b.c.layout))).all()}
        return sorted(v.name for v in registry.views.values() if not v.on_demand and done.get(v.name) != layout_key(v))

    async def record_backfill(self, view: FeatureViewSpec, rows: int) -> None:
        """Remember that ``view``'s online state was backfilled for its current layout."""
        async with self.engine.begin() as conn:
            await upsert_row(
                conn,
                schema.backfills,
                ["view"],
                {"view": view.name, "layout": layout_key(view), "rows": rows, "finished_at_us": self._clock_us()},
            )


async def _generation(conn: AsyncConnection) -> int:
    r = schema.registry
    return int((await conn.execute(select(r.c.generation).where(r.c.id == 1))).scalar_one())


async def _lock_registry(conn: AsyncConnection) -> int:
    """Take the registry lock for ``conn``'s transaction (waiting for a concurrent apply to commit) by
    incrementing the generation; returns the incremented generation."""
    r = schema.registry
    bumped = await conn.execute(
        update(r).where(r.c.id == 1).values(generation=r.c.generation + 1).returning(r.c.generation)
    )
    return int(bumped.scalar_one())
