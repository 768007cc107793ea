"""The serving view of a set of definitions: feature lookup by reference, selections, what they need.

A ``Registry`` is immutable and built from the latest version of every definition; serving and the
online update hold a ``RegistryHolder`` whose registry is swapped when definitions are applied (by
this process at once, by another process on the same database within ``sync``'s interval).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from aimesh.core.errors import InvalidArgument, NotFound
from aimesh.feature.definitions.specs import Aggregation, EntitySpec, FeatureRepo, FeatureSpec, FeatureViewSpec

T = TypeVar("T")


@dataclass(frozen=True)
class ResolvedFeature:
    """A feature with the view it belongs to."""

    view: FeatureViewSpec
    feature: FeatureSpec

    @property
    def name(self) -> str:
        return self.feature.name

    @cached_property
    def ref(self) -> str:
        return f"{self.view.name}:{self.feature.name}"


@dataclass(frozen=True)
class Requirements:
    """What a set of features needs from a request: entity ids (in order of first use) and context fields."""

    entities: tuple[str, ...]
    context_fields: frozenset[str]


class Registry:
    """Lookup over a repo's definitions, with their versions (``versions[(kind, name)]``)."""

    def __init__(self, repo: FeatureRepo, versions: Mapping[tuple[str, str], int] | None = None) -> None:
        self.repo = repo
        self.versions = dict(versions or {})
        self.entities: dict[str, EntitySpec] = {e.name: e for e in repo.entities}
        self.views: dict[str, FeatureViewSpec] = {v.name: v for v in repo.feature_views}
        self._by_ref = {f"{v.name}:{f.name}": ResolvedFeature(v, f) for v in repo.feature_views for f in v.features}
        by_name: dict[str, list[ResolvedFeature]] = defaultdict(list)
        for resolved in self._by_ref.values():
            by_name[resolved.name].append(resolved)
        self._by_name = dict(by_name)
        self._services = {s.name: s for s in repo.feature_services}
        self._selections: dict[tuple[str, tuple[str, ...]], tuple[ResolvedFeature, ...]] = {}
        self._memo: dict[Hashable, Any] = {}

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` computed once per ``key`` for this registry (a registry never changes, so what is
        derived from it, such as a selection's computation plan, can be kept with it)."""
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = build()
        return found  # type: ignore[no-any-return]

    @cached_property
    def views_by_source(self) -> dict[str, tuple[FeatureViewSpec, ...]]:
        """Stream-fed views grouped by their source."""
        grouped: dict[str, list[FeatureViewSpec]] = defaultdict(list)
        for view in self.views.values():
            if not view.on_demand:
                grouped[view.source].append(view)
        return {source: tuple(views) for source, views in grouped.items()}

    def view(self, name: str) -> FeatureViewSpec:
        """The view called ``name``; raises NotFound listing the views that exist."""
        found = self.views.get(name)
        if found is None:
            raise NotFound(f"unknown feature view {name!r}; known feature views: {', '.join(sorted(self.views))}")
        return found

    def feature(self, ref: str) -> ResolvedFeature:
        """The feature ``<view>:<name>`` (or a bare ``name`` unique across views); raises NotFound listing
        the known references, InvalidArgument for an ambiguous bare name."""
        if ":" in ref:
            view_name = ref.partition(":")[0]
            found = self._by_ref.get(ref)
            if found is None:
                view = self.view(view_name)
                raise NotFound(
                    f"unknown feature {ref!r}; view {view_name!r} has: {', '.join(f.name for f in view.features)}"
                )
            return found
        hits = self._by_name.get(ref, [])
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise InvalidArgument(f"feature name {ref!r} is ambiguous: use one of {', '.join(h.ref for h in hits)}")
        raise NotFound(f"unknown feature {ref!r}; known features: {', '.join(self._by_ref)}")

    def expand(self, refs: Sequence[str]) -> tuple[ResolvedFeature, ...]:
        """References resolved in order; ``<view>:*`` expands to every feature of the view."""
        out: list[ResolvedFeature] = []
        for ref in refs:
            view_name, _, feature_name = ref.partition(":")
            if feature_name == "*":
                view = self.view(view_name)
                out.extend(self._by_ref[f"{view.name}:{f.name}"] for f in view.features)
            else:
                out.append(self.feature(ref))
        return tuple(out)

    def feature_service(self, name: str) -> tuple[ResolvedFeature, ...]:
        """The ordered features of service ``name``; raises NotFound listing the services that exist."""
        service = self._services.get(name)
        if service is None:
            known = ", ".join(sorted(self._services))
            raise NotFound(f"unknown feature service {name!r}; known feature services: {known}")
        return self.expand(service.features)

    def select(self, feature_service: str, features: Sequence[str]) -> tuple[ResolvedFeature, ...]:
        """A request's selection: exactly one of a service name or feature references (memoised).

        Raises InvalidArgument when neither or both are given, NotFound for unknown names.
        """
        if bool(feature_service) == bool(features):
            raise InvalidArgument("set exactly one of feature_service and features")
        key = (feature_service, tuple(features))
        cached = self._selections.get(key)
        if cached is None:
            cached = self.feature_service(feature_service) if feature_service else self.expand(features)
            self._selections[key] = cached
        return cached

    def dependencies(self, resolved: ResolvedFeature) -> tuple[ResolvedFeature, ...]:
        """The stream-fed features an on-demand feature's expression names (none for other features).

        A name no stream-fed feature has is a request-context field; definitions where several have it
        are refused (``specs.stream_features_named``), so such a name resolves to none here."""
        if resolved.feature.aggregation is not Aggregation.ON_DEMAND:
            return ()
        return tuple(
            hits[0]
            for name in sorted(resolved.feature.compiled.names)
            if len(hits := [h for h in self._by_name.get(name, []) if not h.view.on_demand]) == 1
        )

    def requirements(self, features: Sequence[ResolvedFeature]) -> Requirements:
        """The entities and request-context fields ``features`` need, on-demand dependencies included."""
        entities: dict[str, None] = {}
        fields: set[str] = set()
        for resolved in features:
            if resolved.feature.aggregation is Aggregation.ON_DEMAND:
                deps = self.dependencies(resolved)
                entities.update((d.view.entity, None) for d in deps)
                fields.update(resolved.feature.compiled.names - {d.name for d in deps})
            else:
                entities[resolved.view.entity] = None
                if resolved.feature.aggregation is Aggregation.IS_NEW and resolved.feature.field:
                    fields.add(resolved.feature.field)
        return Requirements(tuple(entities), frozenset(fields))

    def views_read(self, features: Sequence[ResolvedFeature]) -> tuple[FeatureViewSpec, ...]:
        """The stream-fed views whose histories ``features`` (and their on-demand dependencies) read."""
        out: dict[str, FeatureViewSpec] = {}
        for resolved in features:
            for used in self.dependencies(resolved) if resolved.view.on_demand else (resolved,):
                out[used.view.name] = used.view
        return tuple(out.values())

    @staticmethod
    def column_names(features: Sequence[ResolvedFeature]) -> list[str]:
        """Response column names: feature names, or references when two selected features share a name."""
        names = [f.name for f in features]
        return names if len(set(names)) == len(names) else [f.ref for f in features]


class RegistryHolder:
    """The current registry; ``replace`` swaps it atomically (readers keep the one they took)."""

    def __init__(self, registry: Registry) -> None:
        self.current = registry

    def replace(self, registry: Registry) -> None:
        self.current = registry
