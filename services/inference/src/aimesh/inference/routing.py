"""Routing: which model version serves a request, from the model catalog (``aimesh.registry.models.v1``).

An explicit version pin wins over an alias; no alias means the service's default alias (``champion``).

A request naming neither an alias nor a version is routed by the model's traffic policy
(``ModelCatalog.traffic_policy``, ``route_request``):

- canary: the request's sticky key is the id of the default alias version's signature ``key_entity`` in
  its ``entity_ids`` (the key its Prediction events get, ``prediction_key``); ``bucket(model, key)`` maps
  it to [0, 1) by a BLAKE2b hash of the model name and the key, the same in every process and replica, so
  one entity always gets the same version while the policy stands. A bucket below ``canary_weight`` goes
  to ``canary_version`` with ``ROUTE_CANARY``. Without that entity id the key is the request id (sticky
  per request id only), and without a request id either the bucket is random (a fresh UUID's) (not sticky at all). No
  canary while the canary version is not registered yet, or is the default alias's version itself;
- shadow: the decision carries ``shadow_version`` and ``shadow_share`` (``Shadow``) when that version is
  registered and is not the one answering; ``Shadow.mirrors`` decides per request id, by a second hash
  independent of the canary's. Mirroring itself is the caller's (``Scorer``).

An explicit alias or version is never canaried nor mirrored.

``routed_versions`` lists what must be loaded in Triton for every route to answer: the Triton
(model, version) of each version some alias, canary or shadow points at (pinned versions are not
routes: a pin may name any registered version, and only routed ones are kept loaded).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.errors import InvalidArgument, NotFound, Unavailable
from aimesh.core.model_catalog import ModelCatalog, ModelVersion
from aimesh.inference.predictions import prediction_key

_SHADOW_SALT = "shadow"
"""Prefix of the shadow hash's input, so it is independent of the canary bucket of the same key."""


def bucket(model: str, key: str) -> float:
    """``key``'s place in [0, 1) for ``model``: the first 8 bytes of BLAKE2b(``model`` NUL ``key``) over 2**64
    (deterministic across processes, unlike ``hash``)."""
    digest = hashlib.blake2b(f"{model}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


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
        pointed = [(version, f"alias {alias}") for alias, version in catalog.aliases(model).items()]
        policy = catalog.traffic_policy(model)
        if policy is not None:
            if policy.canary_version and policy.canary_weight > 0:
                pointed.append((policy.canary_version, f"canary {policy.canary_weight:.0%}"))
            if policy.shadow_version and policy.shadow_share > 0:
                pointed.append((policy.shadow_version, f"shadow {policy.shadow_share:.0%}"))
        for version, why in pointed:
            target = catalog.version(model, version)
            if target is None:
                continue
            key = (target.triton_model_name, target.triton_model_version)
            routes.setdefault(key, []).append(f"{model} version {version} ({why})")
    return [RoutedVersion(name, version, tuple(sorted(r))) for (name, version), r in sorted(routes.items())]


@dataclass(frozen=True, slots=True)
class Shadow:
    """The traffic policy's shadow: the version requests are mirrored to and the share mirrored."""

    target: ModelVersion
    share: float

    def mirrors(self, request_id: str) -> bool:
        """Whether the request ``request_id`` is mirrored: its shadow bucket is below ``share`` (random
        without a request id)."""
        key = f"{_SHADOW_SALT}\0{self.target.model_name}"
        return bucket(key, request_id or uuid.uuid4().hex) < self.share


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The version chosen for a request and why."""

    target: ModelVersion
    route: inference_pb2.Route
    alias: str
    """The alias routed by; empty for a pinned version."""
    shadow: Shadow | None = None
    """Where the traffic policy mirrors the request (a share of them), if anywhere; see ``route_request``."""


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


def route_request(
    catalog: ModelCatalog,
    model: str,
    alias: str | None,
    version: int | None,
    *,
    default_alias: str,
    entity_ids: Mapping[str, str],
    request_id: str,
) -> RouteDecision:
    """``resolve_request``, then, for a request naming no alias and no version, the model's traffic policy
    (canary and shadow, see the module doc); raises what ``resolve_request`` raises."""
    [decision] = route_rows(
        catalog, model, alias, version, default_alias=default_alias, rows=[(entity_ids, request_id)]
    )
    return decision


def route_rows(
    catalog: ModelCatalog,
    model: str,
    alias: str | None,
    version: int | None,
    *,
    default_alias: str,
    rows: Sequence[tuple[Mapping[str, str], str]],
) -> list[RouteDecision]:
    """``route_request`` for each of ``rows`` (its entity ids and request id) of one request naming
    ``model``, ``alias`` and ``version``: resolved once, then each row its own canary bucket (ScoreBatch
    routes every row as Score would route it alone); raises what ``resolve_request`` raises."""
    decision = resolve_request(catalog, model, alias, version, default_alias=default_alias)
    policy = catalog.traffic_policy(model)
    if alias is not None or version is not None or policy is None:
        return [decision] * len(rows)
    canary = catalog.version(model, policy.canary_version) if policy.canary_weight > 0 else None
    if canary is not None and canary.version == decision.target.version:
        canary = None
    shadow = catalog.version(model, policy.shadow_version) if policy.shadow_share > 0 else None
    champion = _decision(decision.target, decision.route, decision.alias, shadow, policy.shadow_share)
    if canary is None:
        return [champion] * len(rows)
    canaried = _decision(canary, inference_pb2.ROUTE_CANARY, decision.alias, shadow, policy.shadow_share)
    signature = decision.target.signature
    return [
        canaried
        if bucket(model, prediction_key(signature, entity_ids, request_id) or uuid.uuid4().hex) < policy.canary_weight
        else champion
        for entity_ids, request_id in rows
    ]


def _decision(
    target: ModelVersion, route: inference_pb2.Route, alias: str, shadow: ModelVersion | None, share: float
) -> RouteDecision:
    """The decision for ``target``, mirroring ``share`` of its requests to ``shadow`` when that is registered
    and is not ``target`` itself."""
    if shadow is not None and shadow.version != target.version:
        return RouteDecision(target, route, alias, Shadow(shadow, share))
    return RouteDecision(target, route, alias)
