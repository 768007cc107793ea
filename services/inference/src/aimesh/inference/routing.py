"""Routing: which model version serves a request, from the model catalog (``aimesh.registry.models.v1``).

An explicit version pin wins over an alias; no alias means the service's default alias (``champion``).
Canary and shadow routes come later.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.errors import NotFound, Unavailable
from aimesh.core.model_catalog import ModelCatalog, ModelVersion


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
