"""Definitions <-> their protobuf form (ApplyDefinitions input, ListFeatureViews output)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration

from aimesh.api.common.v1 import common_pb2
from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions.specs import (
    Aggregation,
    FeatureRepo,
    FeatureSpec,
    FeatureViewSpec,
    ListType,
    parse_repo,
    parse_yaml,
)
from aimesh.feature.definitions.store import Change

_PREFIX = "AGGREGATION_"
_TYPE_PREFIX = "VALUE_TYPE_"
_LIST_TYPES = {
    ListType.STRING_LIST: common_pb2.VALUE_TYPE_STRING_LIST,
    ListType.DOUBLE_LIST: common_pb2.VALUE_TYPE_DOUBLE_LIST,
}
_ACTIONS = {
    "created": feature_pb2.CHANGE_ACTION_CREATED,
    "updated": feature_pb2.CHANGE_ACTION_UPDATED,
    "unchanged": feature_pb2.CHANGE_ACTION_UNCHANGED,
}


def _duration(value: timedelta | None) -> Duration | None:
    if value is None:
        return None
    d = Duration()
    d.FromTimedelta(value)
    return d


def _aggregation(agg: Aggregation) -> feature_pb2.Aggregation:
    return feature_pb2.Aggregation.Value(_PREFIX + agg.name)  # type: ignore[return-value]


def _dtype(feature: FeatureSpec) -> common_pb2.ValueType:
    """The type of the feature's values: its list type for ``last_n``, a string for ``last``, else a double."""
    if feature.list_type is not None:
        return _LIST_TYPES[feature.list_type]
    return common_pb2.VALUE_TYPE_STRING if feature.aggregation is Aggregation.LAST else common_pb2.VALUE_TYPE_DOUBLE


def view_to_proto(view: FeatureViewSpec, version: int) -> feature_pb2.FeatureView:
    """The wire form of ``view`` at ``version``."""
    return feature_pb2.FeatureView(
        name=view.name,
        entity=view.entity,
        source=view.source,
        description=view.description,
        version=version,
        ttl=_duration(view.ttl),
        tags=view.tags,
        transformations=[
            feature_pb2.Transformation(name=t.name, expression=t.expression) for t in view.transformations
        ],
        features=[
            feature_pb2.Feature(
                name=f.name,
                source_field=f.field or "",
                aggregation=_aggregation(f.aggregation),
                window=_duration(f.window),
                dtype=_dtype(f),
                description=f.description,
                expression=f.expression or "",
                n=f.n or 0,
            )
            for f in view.features
        ],
    )


def _timedelta(duration: Duration, present: bool) -> timedelta | None:
    """The duration as given (validated by the definitions: whole seconds, positive), None when unset."""
    return duration.ToTimedelta() if present else None


def _feature_dict(f: feature_pb2.Feature) -> dict[str, Any]:
    if f.aggregation not in feature_pb2.Aggregation.values():
        raise InvalidArgument(f"feature {f.name!r}: aggregation {f.aggregation} is not an Aggregation value")
    name = feature_pb2.Aggregation.Name(f.aggregation)
    out: dict[str, Any] = {"name": f.name, "aggregation": name.removeprefix(_PREFIX).lower()}
    if f.aggregation == feature_pb2.AGGREGATION_UNSPECIFIED:
        out["aggregation"] = ""
    if f.source_field:
        out["field"] = f.source_field
    if f.HasField("window"):
        out["window"] = _timedelta(f.window, True)
    if f.expression:
        out["expression"] = f.expression
    if f.n:
        out["n"] = f.n
    if f.aggregation == feature_pb2.AGGREGATION_LAST_N and f.dtype != common_pb2.VALUE_TYPE_UNSPECIFIED:
        # Only last_n reads the dtype (for the others it is what the service reports, and ignored as input);
        # a type that is not a list type is named as is, for the definitions to refuse.
        known = f.dtype in common_pb2.ValueType.values()
        out["dtype"] = common_pb2.ValueType.Name(f.dtype).removeprefix(_TYPE_PREFIX).lower() if known else f.dtype
    if f.description:
        out["description"] = f.description
    return out


def repo_from_request(request: feature_pb2.ApplyDefinitionsRequest) -> FeatureRepo:
    """The request's definitions (its YAML ``document`` or its typed messages), validated.

    Raises InvalidArgument naming the path of each problem.
    """
    typed = bool(request.entities or request.feature_views or request.feature_services)
    if request.document:
        if typed:
            raise InvalidArgument("set either document or entities/feature_views/feature_services, not both")
        return parse_yaml(request.document)
    document: dict[str, Any] = {
        "entities": [
            {"name": e.name, "key": e.key or "entity_key", "description": e.description} for e in request.entities
        ],
        "feature_views": [
            {
                "name": v.name,
                "entity": v.entity,
                "source": v.source,
                "ttl": _timedelta(v.ttl, v.HasField("ttl")),
                "features": [_feature_dict(f) for f in v.features],
                "transformations": [{"name": t.name, "expression": t.expression} for t in v.transformations],
                "description": v.description,
                "tags": dict(v.tags),
            }
            for v in request.feature_views
        ],
        "feature_services": [
            {"name": s.name, "features": list(s.features), "description": s.description}
            for s in request.feature_services
        ],
    }
    return parse_repo(document)


def change_to_proto(change: Change) -> feature_pb2.DefinitionChange:
    return feature_pb2.DefinitionChange(
        kind=change.kind,
        name=change.name,
        action=_ACTIONS[change.action.value],  # type: ignore[arg-type]
        version=change.version,
        detail=change.detail,
    )
