"""The model catalog keeps each version's signature (versions registered without one get the fallback) and
each model's latest traffic policy (replaced by newer revisions, older ones ignored, bad ones poison)."""

from __future__ import annotations

import math

import pytest

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.events import PoisonEvent
from aimesh.core.model_catalog import ModelCatalog, TrafficPolicy, fallback_signature


def signature() -> signature_pb2.ModelSignature:
    return signature_pb2.ModelSignature(
        inputs=[
            signature_pb2.SignatureInput(name="v:a", kind=signature_pb2.INPUT_KIND_NUMERIC, missing_value=1.5),
            signature_pb2.SignatureInput(name="v:b", kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=["x"]),
        ],
        outputs=[signature_pb2.SignatureOutput(name="p", tensor="OUT", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[1])],
        entity_types=["account"],
        key_entity="account",
        context_fields=[signature_pb2.ContextField(name="amount", type=common_pb2.VALUE_TYPE_DOUBLE)],
        task=signature_pb2.TASK_BINARY_CLASSIFICATION,
        input_tensor="IN",
    )


def registered(version: int, sig: signature_pb2.ModelSignature | None = None) -> events_pb2.ModelEvent:
    event = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name="m",
        version=version,
        triton_model_name="m_tr",
        features=["v:a", "v:b"],
        feature_service="svc",
    )
    if sig is not None:
        event.signature.CopyFrom(sig)
    return event


def test_version_carries_its_own_copy_of_the_signature() -> None:
    catalog = ModelCatalog()
    event = registered(1, signature())
    catalog.apply(event)
    event.signature.key_entity = "changed"
    found = catalog.version("m", 1)
    assert found is not None
    assert found.signature == signature()
    assert found.features == ("v:a", "v:b")


def test_version_carries_its_own_copies_of_the_input_profiles() -> None:
    catalog = ModelCatalog()
    event = registered(1, signature())
    event.input_profiles.add(feature="v:a", kind=signature_pb2.INPUT_KIND_NUMERIC, bin_edges=[0, 1], fractions=[1])
    catalog.apply(event)
    event.input_profiles[0].feature = "changed"
    found, old = catalog.version("m", 1), ModelCatalog()
    assert found is not None and [p.feature for p in found.input_profiles] == ["v:a"]
    old.apply(registered(2, signature()))
    assert (version := old.version("m", 2)) is not None and version.input_profiles == ()


def test_version_without_a_signature_gets_the_fallback() -> None:
    catalog = ModelCatalog()
    catalog.apply(registered(1))
    found = catalog.version("m", 1)
    assert found is not None
    sig = found.signature
    assert sig == fallback_signature(["v:a", "v:b"])
    assert [(i.name, i.kind, i.missing_value) for i in sig.inputs] == [
        ("v:a", signature_pb2.INPUT_KIND_NUMERIC, 0.0),
        ("v:b", signature_pb2.INPUT_KIND_NUMERIC, 0.0),
    ]
    assert [(o.name, o.tensor, list(o.shape)) for o in sig.outputs] == [("score", "OUTPUT__0", [1])]
    assert sig.input_tensor == "INPUT__0"
    assert not sig.entity_types and not sig.context_fields and not sig.key_entity


def test_signature_without_tensor_or_outputs_takes_the_fallbacks() -> None:
    bare = signature()
    bare.input_tensor = ""
    del bare.outputs[:]
    catalog = ModelCatalog()
    catalog.apply(registered(1, bare))
    found = catalog.version("m", 1)
    assert found is not None
    assert found.signature.input_tensor == "INPUT__0"
    assert [o.name for o in found.signature.outputs] == ["score"]
    assert found.signature.key_entity == "account"


def test_features_default_to_the_signature_inputs() -> None:
    event = registered(1, signature())
    del event.features[:]
    catalog = ModelCatalog()
    catalog.apply(event)
    found = catalog.version("m", 1)
    assert found is not None and found.features == ("v:a", "v:b")


def test_alias_event_with_a_location_registers_with_its_signature() -> None:
    catalog = ModelCatalog()
    event = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
        model_name="m",
        version=2,
        triton_model_name="m_tr",
        alias_change=training_pb2.AliasChange(alias="champion", new_version=2),
        signature=signature(),
    )
    catalog.apply(event)
    found = catalog.version("m", 2)
    assert found is not None and found.signature.key_entity == "account"
    assert catalog.alias_target("m", "champion") == 2


def policy_event(
    revision: int,
    canary: int = 2,
    weight: float = 0.1,
    shadow_version: int = 0,
    shadow_share: float = 0.0,
    fallback: float | None = None,
) -> events_pb2.ModelEvent:
    event = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED,
        model_name="m",
        traffic_policy=training_pb2.TrafficPolicy(
            model_name="m",
            canary_version=canary,
            canary_weight=weight,
            shadow_version=shadow_version,
            shadow_share=shadow_share,
            revision=revision,
        ),
    )
    if fallback is not None:
        event.traffic_policy.fallback.constant_score = fallback
    return event


def test_traffic_policy_is_replaced_by_newer_revisions_and_keeps_unknown_versions() -> None:
    catalog = ModelCatalog()
    catalog.apply(registered(1))
    assert catalog.traffic_policy("m") is None
    catalog.apply(policy_event(1, canary=7, weight=0.1, shadow_version=8, shadow_share=0.5))
    assert catalog.traffic_policy("m") == TrafficPolicy("m", 7, 0.1, 8, 0.5, 1), "versions not registered are kept"
    catalog.apply(policy_event(2, canary=7, weight=0.25))
    assert catalog.traffic_policy("m") == TrafficPolicy("m", 7, 0.25, 0, 0.0, 2), "the whole policy is replaced"
    catalog.apply(policy_event(2, canary=7, weight=0.25))
    assert catalog.traffic_policy("m") == TrafficPolicy("m", 7, 0.25, 0, 0.0, 2), "a redelivery changes nothing"
    catalog.apply(policy_event(1, canary=7, weight=0.9))
    assert catalog.traffic_policy("m") == TrafficPolicy("m", 7, 0.25, 0, 0.0, 2), "an older revision is ignored"
    catalog.apply(policy_event(3, canary=0, weight=0.0))
    assert catalog.traffic_policy("m") == TrafficPolicy("m", 0, 0.0, 0, 0.0, 3)
    assert catalog.traffic_policy("other") is None
    assert catalog.versions("m").keys() == {1} and catalog.models() == ["m"]


def test_constant_fallback_is_kept_with_the_policy_and_replaced_with_it() -> None:
    catalog = ModelCatalog()
    catalog.apply(policy_event(1, fallback=0.0))
    expected = TrafficPolicy("m", 2, 0.1, 0, 0.0, 1, fallback=training_pb2.Fallback(constant_score=0.0))
    assert catalog.traffic_policy("m") == expected, "0.0 is a score"
    catalog.apply(policy_event(2, fallback=0.75))
    held = catalog.traffic_policy("m")
    assert held is not None and held.fallback == training_pb2.Fallback(constant_score=0.75)
    catalog.apply(policy_event(3))
    held = catalog.traffic_policy("m")
    assert held is not None and held.fallback is None, "a policy without a fallback removes it"


def test_rule_and_previous_version_fallbacks_are_kept_and_bad_ones_are_poison() -> None:
    catalog = ModelCatalog()
    event = policy_event(1)
    rule = event.traffic_policy.fallback.rule
    rule.default_score = 0.1
    rule.conditions.add(field="context.amount", op=training_pb2.FallbackCondition.OP_GT, number=10.0, score=0.9)
    catalog.apply(event)
    held = catalog.traffic_policy("m")
    assert held is not None and held.fallback is not None and held.fallback.rule == rule
    event = policy_event(2)
    event.traffic_policy.fallback.previous_version.version = 1
    catalog.apply(event)
    held = catalog.traffic_policy("m")
    assert held is not None and held.fallback is not None and held.fallback.previous_version.version == 1
    bad = policy_event(3)
    bad.traffic_policy.fallback.rule.conditions.add(field="amount", op=training_pb2.FallbackCondition.OP_GT, number=1)
    with pytest.raises(PoisonEvent, match=r"conditions\[0\]\.field"):
        catalog.apply(bad)


def test_policy_only_model_is_not_routable_yet() -> None:
    catalog = ModelCatalog()
    catalog.apply(policy_event(1))
    assert catalog.is_empty and catalog.models() == []
    assert catalog.traffic_policy("m") is not None


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            events_pb2.ModelEvent(kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED, model_name="m"),
            "MISSING_FIELD",
        ),
        (policy_event(1, weight=1.5), "INVALID_VALUE"),
        (policy_event(1, weight=math.nan), "INVALID_VALUE"),
        (policy_event(1, shadow_share=-0.1), "INVALID_VALUE"),
        (policy_event(1, canary=-1), "INVALID_VALUE"),
        (policy_event(1, fallback=math.inf), "INVALID_VALUE"),
        (policy_event(1, fallback=math.nan), "INVALID_VALUE"),
    ],
)
def test_bad_policy_is_poison_and_keeps_the_held_one(event: events_pb2.ModelEvent, reason: str) -> None:
    catalog = ModelCatalog()
    catalog.apply(policy_event(1, weight=0.2))
    with pytest.raises(PoisonEvent) as raised:
        catalog.apply(event)
    assert raised.value.reason_code == reason
    held = catalog.traffic_policy("m")
    assert held is not None and held.canary_weight == 0.2


def test_policy_of_another_model_is_poison() -> None:
    event = policy_event(1)
    event.traffic_policy.model_name = "other"
    with pytest.raises(PoisonEvent, match="holds the policy of other"):
        ModelCatalog().apply(event)
