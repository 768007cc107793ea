"""Traffic policies as the registry stores them: the request checks that need no database, the
``TrafficPolicy`` of a stored revision, and the ModelEvent that announces one.

A policy splits a model's traffic beyond its champion alias (see ``TrafficPolicy`` in training.proto):
a sticky canary (version + weight) and an asynchronous shadow (version + share), plus an optional
fallback (a constant score, a rule over request fields or another version: what Score answers when the
routed version cannot be called in time, see ``aimesh.core.fallback``). Revisions are
numbered per model from 1; revision 0 is the policy of a model that never had one (champion only, no
fallback). A ``Fallback`` without a kind is no fallback.
"""

from __future__ import annotations

import math
from typing import Any

from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.fallback import fallback_problems, kind_of
from aimesh.training.paging import timestamp


def _check_share(policy: training_pb2.TrafficPolicy, share: str, version: str) -> None:
    value = float(getattr(policy, share))
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"policy.{share} must be in [0, 1], not {value}")
    number = int(getattr(policy, version))
    if number < 0:
        raise InvalidArgument(f"policy.{version} must not be negative (0: none), not {number}")
    if value > 0.0 and number == 0:
        raise InvalidArgument(f"policy.{share} is {value} but policy.{version} is not set")


def fallback_of(policy: training_pb2.TrafficPolicy) -> training_pb2.Fallback | None:
    """``policy``'s fallback; None when it has none (unset, or a kind not set)."""
    return policy.fallback if policy.HasField("fallback") and kind_of(policy.fallback) else None


def fallback_columns(fallback: training_pb2.Fallback | None) -> dict[str, Any]:
    """The ``traffic_policies`` columns of ``fallback`` (all NULL for none): one per kind."""
    kind = kind_of(fallback)
    return {
        "fallback_constant_score": fallback.constant_score if fallback and kind == "constant_score" else None,
        "fallback_rule": fallback.rule.SerializeToString(deterministic=True) if fallback and kind == "rule" else None,
        "fallback_version": fallback.previous_version.version if fallback and kind == "previous_version" else None,
    }


def fallback_of_row(row: Any) -> training_pb2.Fallback | None:
    """The ``Fallback`` a ``traffic_policies`` row records (None: no fallback)."""
    if row.fallback_constant_score is not None:
        return training_pb2.Fallback(constant_score=row.fallback_constant_score)
    if row.fallback_rule is not None:
        return training_pb2.Fallback(rule=training_pb2.FallbackRule.FromString(row.fallback_rule))
    if row.fallback_version is not None:
        return training_pb2.Fallback(
            previous_version=training_pb2.PreviousVersionFallback(version=row.fallback_version)
        )
    return None


def check_policy(policy: training_pb2.TrafficPolicy) -> None:
    """``InvalidArgument`` naming the field when a weight or share is outside [0, 1] (or not finite), a
    version is negative, a weight or share above 0 has no version, the fallback is one
    ``aimesh.core.fallback.fallback_problems`` refuses, or the actor is missing."""
    _check_share(policy, "canary_weight", "canary_version")
    _check_share(policy, "shadow_share", "shadow_version")
    problems = fallback_problems(policy.fallback)
    if problems:
        raise InvalidArgument("; ".join(f"policy.{p}" for p in problems))
    if not policy.actor:
        raise InvalidArgument("policy.actor is required")


def same_policy(a: training_pb2.TrafficPolicy, b: training_pb2.TrafficPolicy) -> bool:
    """Whether ``a`` and ``b`` are the same policy: they route alike (same canary and shadow versions,
    weight and share) and have the same fallback (or both none)."""
    return (a.canary_version, a.canary_weight, a.shadow_version, a.shadow_share, fallback_of(a)) == (
        b.canary_version,
        b.canary_weight,
        b.shadow_version,
        b.shadow_share,
        fallback_of(b),
    )


def policy_message(row: Any) -> training_pb2.TrafficPolicy:
    """The ``TrafficPolicy`` of a ``traffic_policies`` row."""
    return training_pb2.TrafficPolicy(
        model_name=row.model_name,
        revision=row.revision,
        canary_version=row.canary_version,
        canary_weight=row.canary_weight,
        shadow_version=row.shadow_version,
        shadow_share=row.shadow_share,
        fallback=fallback_of_row(row),
        actor=row.actor,
        reason=row.reason,
        time=timestamp(row.time),
    )


def policy_event(policy: training_pb2.TrafficPolicy) -> events_pb2.ModelEvent:
    """The TRAFFIC_POLICY_CHANGED ModelEvent announcing revision ``policy`` (version 0, as the proto says)."""
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED,
        model_name=policy.model_name,
        traffic_policy=policy,
        time=policy.time,
    )


def policy_event_id(policy: training_pb2.TrafficPolicy) -> str:
    """The stable outbox id (``ce_id``) of ``policy``'s event: ``registry/<model>/policy/<revision>``."""
    return f"registry/{policy.model_name}/policy/{policy.revision}"
