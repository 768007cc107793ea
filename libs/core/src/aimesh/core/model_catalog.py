"""The model registry as seen from ``aimesh.registry.models.v1``: registered versions and their aliases.

Inference routes by it and monitor reads the drift reference from it; both build it by replaying the
registry topic from the earliest offset (``ModelEvent`` records are keyed by model name, so one
model's events arrive in order). Applying an event is idempotent: a redelivered event changes nothing.

Every version carries its ``ModelSignature`` (``ModelEvent.signature``). A version registered before
signatures existed gets ``fallback_signature(features)``, what those models were: every feature a
numeric input fed 0.0 when missing, one output ``score`` (``OUTPUT__0``, one value), input tensor
``INPUT__0``, and no entity type or context field required (so no request check beyond the routing).
A signature without an input tensor or without outputs gets those of the fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.training.v1 import events_pb2
from aimesh.core.events import Event, PoisonEvent

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
        )


class ModelCatalog:
    """Versions and aliases per model, kept current by ``apply`` (not thread-safe; one event loop)."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, ModelVersion]] = {}
        self._aliases: dict[str, dict[str, int]] = {}

    def apply(self, event: events_pb2.ModelEvent) -> None:
        """Record a registration or an alias move.

        ``ALIAS_CHANGED`` with ``new_version`` 0 removes the alias. An alias event that also carries the
        Triton location of a version not seen yet registers it (so an alias event alone is enough to
        route); it never replaces what a ``VERSION_REGISTERED`` event recorded.
        Raises ``PoisonEvent`` (``MISSING_FIELD``) for an event without a model name, version or alias.
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
