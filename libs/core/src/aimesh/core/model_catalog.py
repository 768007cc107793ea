"""The model registry as seen from ``aimesh.registry.models.v1``: registered versions, their aliases and
each model's traffic policy.

Inference routes by it and monitor reads the drift reference from it; both build it by replaying the
registry topic from the earliest offset (``ModelEvent`` records are keyed by model name, so one
model's events arrive in order). Applying an event is idempotent: a redelivered event changes nothing.

Every version carries its ``ModelSignature`` (``ModelEvent.signature``). A version registered before
signatures existed gets ``fallback_signature(features)``, what those models were: every feature a
numeric input fed 0.0 when missing, one output ``score`` (``OUTPUT__0``, one value), input tensor
``INPUT__0``, and no entity type or context field required (so no request check beyond the routing).
A signature without an input tensor or without outputs gets those of the fallback.

A ``TRAFFIC_POLICY_CHANGED`` event carries the model's whole new policy (canary version and weight,
shadow version and share, fallback, revision); it replaces the one held, unless its revision is older (then it is
ignored: a replay or a late duplicate never rolls a policy back). A policy may name a version the
catalog has not seen registered yet: it is kept as is, and routing uses that version only once it is
known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.events import Event, PoisonEvent
from aimesh.core.fallback import fallback_problems, kind_of

DEFAULT_INPUT_TENSOR = "INPUT__0"
DEFAULT_OUTPUT_TENSOR = "OUTPUT__0"


def fallback_signature(features: Sequence[str]) -> signature_pb2.ModelSignature:
    """The signature of a version registered without one (see the module doc)."""
    return signature_pb2.ModelSignature(
        inputs=[
            signature_pb2.SignatureInput(name=name, kind=signature_pb2.INPUT_KIND_NUMERIC, missing_value=0.0)
            for name in features
        ],
        outputs=[
            signature_pb2.SignatureOutput(
                name="score", tensor=DEFAULT_OUTPUT_TENSOR, dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[1]
            )
        ],
        input_tensor=DEFAULT_INPUT_TENSOR,
    )


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered model version: where Triton serves it, what it reads, its score reference."""

    model_name: str
    version: int
    triton_model_name: str
    triton_model_version: int
    features: tuple[str, ...]
    feature_service: str
    reference_edges: tuple[float, ...]
    reference_fractions: tuple[float, ...]
    reference_count: int
    signature: signature_pb2.ModelSignature = field(hash=False)
    """What the version reads and returns; treat as read-only (``from_event`` gives each version its own copy)."""
    input_profiles: tuple[training_pb2.FeatureProfile, ...] = field(default=(), hash=False)
    """The reference profile of each numeric and categorical input (signature order; none for a version
    registered before profiles existed); read-only, each version has its own copies."""

    @property
    def has_reference(self) -> bool:
        """True when the version carries a usable score profile (``len(edges) == len(fractions) + 1``)."""
        return bool(self.reference_fractions) and len(self.reference_edges) == len(self.reference_fractions) + 1

    @classmethod
    def from_event(cls, event: events_pb2.ModelEvent) -> ModelVersion:
        profile = event.reference_profile
        signature = fallback_signature(event.features)
        if event.HasField("signature"):
            fallback, signature = signature, signature_pb2.ModelSignature()
            signature.CopyFrom(event.signature)
            signature.input_tensor = signature.input_tensor or DEFAULT_INPUT_TENSOR
            if not signature.outputs:
                signature.outputs.extend(fallback.outputs)
        return cls(
            model_name=event.model_name,
            version=event.version,
            triton_model_name=event.triton_model_name or event.model_name,
            triton_model_version=event.triton_model_version,
            features=tuple(event.features) or tuple(i.name for i in signature.inputs),
            feature_service=event.feature_service,
            reference_edges=tuple(profile.bin_edges),
            reference_fractions=tuple(profile.fractions),
            reference_count=profile.count,
            signature=signature,
            input_profiles=tuple(_copy(profile) for profile in event.input_profiles),
        )


def _copy(profile: training_pb2.FeatureProfile) -> training_pb2.FeatureProfile:
    copy = training_pb2.FeatureProfile()
    copy.CopyFrom(profile)
    return copy


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """One revision of a model's traffic policy (``aimesh.api.training.v1.TrafficPolicy``; see its doc).

    A version of 0 means none: no canary, no shadow."""

    model_name: str
    canary_version: int
    canary_weight: float
    """Share of key entities routed to ``canary_version``, in [0, 1]."""
    shadow_version: int
    shadow_share: float
    """Share of requests mirrored to ``shadow_version``, in [0, 1]."""
    revision: int
    fallback: training_pb2.Fallback | None = None
    """What Score answers with (``ROUTE_FALLBACK``) when the routed version cannot be called in time (see
    ``aimesh.core.fallback``); None: no fallback (a ``Fallback`` of no kind is stored as None)."""

    @classmethod
    def from_event(cls, event: events_pb2.ModelEvent) -> TrafficPolicy:
        """The policy of a ``TRAFFIC_POLICY_CHANGED`` event; ``PoisonEvent`` when it carries none, names
        another model, or holds a negative version, a share outside [0, 1] or a fallback
        ``aimesh.core.fallback.fallback_problems`` refuses. A ``fallback`` of no kind is no fallback."""
        if not event.HasField("traffic_policy"):
            raise PoisonEvent("MISSING_FIELD", f"TRAFFIC_POLICY_CHANGED for {event.model_name} without traffic_policy")
        policy = event.traffic_policy
        if policy.model_name and policy.model_name != event.model_name:
            raise PoisonEvent(
                "INVALID_VALUE",
                f"TRAFFIC_POLICY_CHANGED for {event.model_name} holds the policy of {policy.model_name}",
            )
        problems = [
            f"{name} is {value}, expected a share in [0, 1]"
            for name, value in (("canary_weight", policy.canary_weight), ("shadow_share", policy.shadow_share))
            if not (math.isfinite(value) and 0.0 <= value <= 1.0)
        ]
        problems += [
            f"{name} is {value}, expected a version (0: none)"
            for name, value in (("canary_version", policy.canary_version), ("shadow_version", policy.shadow_version))
            if value < 0
        ]
        problems += fallback_problems(policy.fallback)
        if problems:
            raise PoisonEvent("INVALID_VALUE", f"traffic policy of {event.model_name}: {'; '.join(problems)}")
        return cls(
            model_name=event.model_name,
            canary_version=policy.canary_version,
            canary_weight=policy.canary_weight,
            shadow_version=policy.shadow_version,
            shadow_share=policy.shadow_share,
            revision=policy.revision,
            fallback=policy.fallback if kind_of(policy.fallback) else None,
        )


class ModelCatalog:
    """Versions, aliases and traffic policies per model, kept current by ``apply`` (not thread-safe; one
    event loop)."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, ModelVersion]] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._policies: dict[str, TrafficPolicy] = {}

    def apply(self, event: events_pb2.ModelEvent) -> None:
        """Record a registration, an alias move or a traffic policy.

        ``ALIAS_CHANGED`` with ``new_version`` 0 removes the alias. An alias event that also carries the
        Triton location of a version not seen yet registers it (so an alias event alone is enough to
        route); it never replaces what a ``VERSION_REGISTERED`` event recorded. ``TRAFFIC_POLICY_CHANGED``
        replaces the model's policy unless its revision is older than the one held (see the module doc).
        Raises ``PoisonEvent`` (``MISSING_FIELD``) for an event without a model name, version, alias or
        policy, and (``INVALID_VALUE``) for an unknown kind or a policy ``TrafficPolicy.from_event`` refuses.
        """
        if not event.model_name:
            raise PoisonEvent("MISSING_FIELD", "ModelEvent without model_name")
        kind = event.kind
        if kind == events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED:
            if event.version <= 0:
                raise PoisonEvent("MISSING_FIELD", f"VERSION_REGISTERED for {event.model_name} without a version")
            self._register(event)
        elif kind == events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED:
            change = event.alias_change
            if not change.alias:
                raise PoisonEvent("MISSING_FIELD", f"ALIAS_CHANGED for {event.model_name} without alias_change.alias")
            target = change.new_version or event.version
            if (
                event.triton_model_name
                and target > 0
                and target == event.version
                and not self.version(event.model_name, target)
            ):
                self._register(event)
            aliases = self._aliases.setdefault(event.model_name, {})
            if target > 0:
                aliases[change.alias] = target
            else:
                aliases.pop(change.alias, None)
        elif kind == events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED:
            policy = TrafficPolicy.from_event(event)
            held = self._policies.get(event.model_name)
            if held is None or policy.revision >= held.revision:
                self._policies[event.model_name] = policy
        else:
            raise PoisonEvent("INVALID_VALUE", f"ModelEvent for {event.model_name} has unknown kind {kind}")

    def _register(self, event: events_pb2.ModelEvent) -> None:
        self._versions.setdefault(event.model_name, {})[event.version] = ModelVersion.from_event(event)

    async def handle(self, event: Event) -> None:
        """Transport-free consumer handler: decode a ``ModelEvent`` and apply it (``PoisonEvent`` when bad)."""
        self.apply(event.parse(events_pb2.ModelEvent))

    @property
    def is_empty(self) -> bool:
        return not self._versions and not self._aliases

    def models(self) -> list[str]:
        """Names of every model with a version or an alias, sorted."""
        return sorted(set(self._versions) | set(self._aliases))

    def versions(self, model: str) -> dict[int, ModelVersion]:
        """Registered versions of ``model`` (empty when unknown)."""
        return dict(self._versions.get(model, {}))

    def aliases(self, model: str) -> dict[str, int]:
        """Alias -> version of ``model`` (empty when unknown)."""
        return dict(self._aliases.get(model, {}))

    def version(self, model: str, version: int) -> ModelVersion | None:
        return self._versions.get(model, {}).get(version)

    def alias_target(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None."""
        return self._aliases.get(model, {}).get(alias)

    def traffic_policy(self, model: str) -> TrafficPolicy | None:
        """The latest traffic policy of ``model`` (None when none was set); its versions may not be known yet."""
        return self._policies.get(model)
