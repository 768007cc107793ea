"""What each ``MonitorService`` method needs from the caller's tenant (``aimesh.core.auth``):
``model.read`` on the named model (``ListAlerts`` without a model filter: on every model);
``AcknowledgeAlert`` changes an alert's state, an operator's action on a model like a promotion, so it
needs ``model.promote``, and since its request names only the alert, on every model (a grant on ``*``)."""

from __future__ import annotations

from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.auth import AccessRule, needs, service_rules

SERVICE_NAME = monitor_pb2.DESCRIPTOR.services_by_name["MonitorService"].full_name

ACCESS: dict[str, AccessRule] = service_rules(
    SERVICE_NAME,
    {
        "GetDriftReport": needs("model.read", lambda r: r.model_name),
        "GetDrift": needs("model.read", lambda r: r.model_name),
        "ListAlerts": needs("model.read", lambda r: r.model_name),
        "AcknowledgeAlert": needs("model.promote"),
        "GetServiceLevels": needs("model.read", lambda r: r.model_name),
    },
)
