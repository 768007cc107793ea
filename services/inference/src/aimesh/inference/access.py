"""What each ``InferenceService`` method needs from the caller's tenant (``aimesh.core.auth``):
``Score``, ``ScoreBatch`` and ``Recommend`` need ``model.score`` and ``GetModelSignature`` ``model.read`` on the
requested model."""

from __future__ import annotations

from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.auth import AccessRule, needs, service_rules

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name

ACCESS: dict[str, AccessRule] = service_rules(
    SERVICE_NAME,
    {
        "Score": needs("model.score", lambda r: r.model),
        "GetModelSignature": needs("model.read", lambda r: r.model),
        "Recommend": needs("model.score", lambda r: r.model),
        "ScoreBatch": needs("model.score", lambda r: r.model),
    },
)
