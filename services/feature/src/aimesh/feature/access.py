"""What each ``FeatureService`` method needs from the caller's tenant (``aimesh.core.auth``).

Reads by feature service need ``feature_service.read`` on it; reads by explicit "<view>:<feature>"
references need ``feature_view.read`` on each view. ``ApplyDefinitions`` needs
``feature_definitions.apply`` on the name of every entity, view and feature service in the request (on
every name when the definitions come as one ``document``). ``ListFeatureViews`` needs
``feature_view.read`` on every view.
"""

from __future__ import annotations

from typing import Any

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.auth import ALL, AccessRule, Requirement, needs, service_rules

SERVICE_NAME = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"].full_name


def _reads(request: Any) -> list[Requirement]:
    if request.feature_service or not request.features:
        return [("feature_service.read", request.feature_service or ALL)]
    views = sorted({reference.partition(":")[0] for reference in request.features})
    return [("feature_view.read", view or ALL) for view in views]


def _definition_names(request: feature_pb2.ApplyDefinitionsRequest) -> list[str]:
    if request.document:
        return [ALL]
    return [
        *(e.name for e in request.entities),
        *(v.name for v in request.feature_views),
        *(f.name for f in request.feature_services),
    ]


ACCESS: dict[str, AccessRule] = service_rules(
    SERVICE_NAME,
    {
        "GetOnlineFeatures": _reads,
        "GetHistoricalFeatures": _reads,
        "ApplyDefinitions": needs("feature_definitions.apply", _definition_names),
        "ListFeatureViews": needs("feature_view.read"),
    },
)
