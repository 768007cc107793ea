"""What each ``TrainingService`` method needs from the caller's tenant (``aimesh.core.auth``).

``StartRun`` needs ``model.train`` on the spec's model and ``feature_service.read`` on its feature
service; ``RegisterModel`` ``model.register``, and ``SetAlias``, ``SetTrafficPolicy``, ``Promote`` and
``Rollback`` ``model.promote`` on the model; the reads (``GetAlias``, ``ListAliasAudit``,
``GetTrafficPolicy``, ``ListTrafficPolicyAudit`` ...) ``model.read`` on the named model (``GetRun``,
whose request names no model, and the list calls without a model filter: on every model).
"""

from __future__ import annotations

from aimesh.api.training.v1 import training_pb2
from aimesh.core.auth import AccessRule, all_of, needs, service_rules

SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name


ACCESS: dict[str, AccessRule] = service_rules(
    SERVICE_NAME,
    {
        "StartRun": all_of(
            needs("model.train", lambda r: r.spec.model_name),
            needs("feature_service.read", lambda r: r.spec.feature_service),
        ),
        "GetRun": needs("model.read"),
        "ListRuns": needs("model.read", lambda r: r.model_name),
        "RegisterModel": needs("model.register", lambda r: r.model_name),
        "GetModelVersion": needs("model.read", lambda r: r.model_name),
        "ListModelVersions": needs("model.read", lambda r: r.model_name),
        "SetAlias": needs("model.promote", lambda r: r.model_name),
        "GetAlias": needs("model.read", lambda r: r.model_name),
        "ListAliasAudit": needs("model.read", lambda r: r.model_name),
        "SetTrafficPolicy": needs("model.promote", lambda r: r.policy.model_name),
        "GetTrafficPolicy": needs("model.read", lambda r: r.model_name),
        "ListTrafficPolicyAudit": needs("model.read", lambda r: r.model_name),
        "Promote": needs("model.promote", lambda r: r.model_name),
        "Rollback": needs("model.promote", lambda r: r.model_name),
    },
)
