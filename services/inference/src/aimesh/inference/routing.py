"""Routing: which model version serves a request, from the model catalog (``aimesh.registry.models.v1``).

An explicit version pin wins over an alias; no alias means the service's default alias (``champion``).
Canary and shadow routes come later.

``routed_versions`` lists what must be loaded in Triton for every route to answer: the Triton
(model, version) of each version some alias points at (pinned versions are not routes: a pin may
name any registered version, and only routed ones are kept loaded).
"""

from __future__ import annotations

from dataclasses import dataclass

from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.errors import InvalidArgument, NotFound, Unavailable
from aimesh.core.model_catalog import ModelCatalog, ModelVersion


@dataclass(frozen=True, slots=True)
class RoutedVersion:
    """One Triton (model, version) that at least one route points at, and the routes that do."""

    triton_model: str
    triton_version: int
    """0 means Triton's latest version of ``triton_model``."""
    routes: tuple[str, ...]
    """Each route as ``<model> version <n> (alias <alias>)``, sorted."""

    def describe(self) -> str:
        """``<routes> -> Triton <model> version <n>``, for readiness and logs."""
        version = str(self.triton_version) if self.triton_version > 0 else "latest"
        return f"{'; '.join(self.routes)} -> Triton {self.triton_model!r} version {version}"


def routed_versions(catalog: ModelCatalog) -> list[RoutedVersion]:
    """Every Triton (model, version) an alias of any model points at, sorted; each listed once with all its
    routes. An alias pointing at a version whose registration has not been seen is left out (routing
    answers ``Unavailable`` for it; there is nothing to load)."""
    routes: dict[tuple[str, int], list[str]] = {}
    for model in catalog.models():
        for alias, version in catalog.aliases(model).items():
            target = catalog.version(model, version)
            if target is None:
                continue
            key = (target.triton_model_name, target.triton_model_version)
            routes.setdefault(key, []).append(f"{model} version {version} (alias {alias})")
    return [RoutedVersion(name, version, tuple(sorted(r))) for (name, version), r in sorted(routes.items())]


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The version chosen for a request and why."""

    target: ModelVersion
    route: inference_pb2.Route
    alias: str
    """The alias routed by; empty for a pinned version."""


def resolve(catalog: ModelCatalog, model: str, *, alias: str | None, version: int | None) -> RouteDecision:
    """Choose the version of ``model`` to call.

    Raises ``Unavailable`` when no model event has been seen yet, ``NotFound`` naming what exists when
    the model, the pinned version or the alias is unknown, and ``Unavailable`` when an alias points at a
    version whose registration has not been seen.
    """
    if catalog.is_empty:
        raise Unavailable("no model is registered yet: the routing table has seen no event on the registry topic")
    known = catalog.models()
    if model not in known:
        raise NotFound(f"model {model!r} is not registered; registered models: {', '.join(known)}")
    versions = catalog.versions(model)
    if version is not None:
        target = versions.get(version)
        if target is None:
            listed = ", ".join(str(v) for v in sorted(versions)) or "none"
            raise NotFound(f"model {model!r} has no version {version}; registered versions: {listed}")
        return RouteDecision(target, inference_pb2.ROUTE_PINNED, "")
    name = alias or ""
    pointed = catalog.alias_target(model, name)
    if pointed is None:
        listed = ", ".join(f"{a} -> {v}" for a, v in sorted(catalog.aliases(model).items())) or "none"
        raise NotFound(f"model {model!r} has no alias {name!r}; aliases: {listed}")
    target = versions.get(pointed)
    if target is None:
        raise Unavailable(f"alias {name!r} of model {model!r} points at version {pointed}, which is not registered yet")
    return RouteDecision(target, inference_pb2.ROUTE_CHAMPION, name)


def resolve_request(
    catalog: ModelCatalog, model: str, alias: str | None, version: int | None, *, default_alias: str
) -> RouteDecision:
    """``resolve`` for a request's ``model``, optional ``alias`` (None: ``default_alias``) and optional
    ``version``; ``InvalidArgument`` when ``model`` is empty, otherwise what ``resolve`` raises."""
    if not model:
        raise InvalidArgument("model is required")
    return resolve(catalog, model, alias=default_alias if alias is None else alias, version=version)
