"""What each ``IngestService`` method needs from the caller's tenant (``aimesh.core.auth``).

``Publish`` needs ``source.write`` on the request's source, ``RegisterSource`` ``source.register`` on
the definition's name, ``GetSource`` ``source.read`` on the named source and ``ListSources``
``source.read`` on every source.
"""

from __future__ import annotations

from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.core.auth import AccessRule, needs, service_rules

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name

ACCESS: dict[str, AccessRule] = service_rules(
    SERVICE_NAME,
    {
        "Publish": needs("source.write", lambda r: r.source),
        "RegisterSource": needs("source.register", lambda r: r.source.name),
        "GetSource": needs("source.read", lambda r: r.name),
        "ListSources": needs("source.read"),
    },
)
