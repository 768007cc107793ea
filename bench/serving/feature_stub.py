"""A FeatureService stand-in for the serving benchmarks: ``python -m bench.serving.feature_stub PORT FILE``.

``FILE`` (``write``) holds ``{"services": {feature_service: {"features": [name, ...], "rows": {entity_id:
[value, ...]}, "context": {name: field}}}}``: per feature service, per entity one value per feature, a JSON
number (a double), a string, a list of strings (a list value) or null (MISSING); ``context`` names the
features computed from the request instead (on-demand features: the entity row's ``request_context[field]``
as it came, PRESENT without an event time, MISSING when absent). A request's ``feature_service`` picks its
service (``""`` answers any name not listed). ``GetOnlineFeatures`` answers every entity row from it (the
entity row's first entity id picks the entity): the features in that order, stored PRESENT values with the
as-of time as their event time; an unknown entity gets every stored feature MISSING; an unknown feature
service is NOT_FOUND. Responses are built once at start, so a lookup costs the gRPC round trip and little
else: the benchmarks measure inference's own overhead on top of Triton, not a feature store (bench/feature
does that). Reports SERVING on the standard health service, as inference's readiness asks. Runs until
SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc

HEALTH_NAME = "aimesh.api.feature.v1.FeatureService"

StubValue = float | str | list[str] | None


ANY_SERVICE = ""
"""The ``services`` key that answers a feature service not listed."""


@dataclass(frozen=True)
class StubService:
    """One feature service of the stub: ``rows[entity]`` holds one value per name of ``features``, in order
    (ignored for the features ``context`` maps to the request-context field they echo)."""

    features: Sequence[str]
    rows: Mapping[str, Sequence[StubValue]]
    context: Mapping[str, str] = field(default_factory=dict)


def write(path: Path, services: Mapping[str, StubService]) -> None:
    """The stub's input file (see the module doc)."""
    spec = {
        name: {
            "features": list(s.features),
            "rows": {e: list(v) for e, v in s.rows.items()},
            "context": dict(s.context),
        }
        for name, s in services.items()
    }
    path.write_text(json.dumps({"services": spec}))


def _value(value: Any) -> feature_pb2.FeatureValue:
    if value is None:
        return feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING)
    out = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT)
    if isinstance(value, list):
        out.value.list_value.SetInParent()
        for item in value:
            out.value.list_value.values.add(string_value=item)
    elif isinstance(value, str):
        out.value.string_value = value
    else:
        out.value.double_value = float(value)
    return out


class _Service:
    """One service's precomputed rows, and the positions of its on-demand features with their fields."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.features = list(spec["features"])
        on_demand: Mapping[str, str] = spec.get("context", {})
        self.on_demand = [(j, on_demand[name]) for j, name in enumerate(self.features) if name in on_demand]
        skip = {j for j, _ in self.on_demand}
        self.rows = {
            entity: feature_pb2.OnlineFeatureRow(
                entity_id=entity,
                values=[_value(None if j in skip else v) for j, v in enumerate(values)],
            )
            for entity, values in spec["rows"].items()
        }
        self.missing = [feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING) for _ in self.features]


class StubFeatureService(feature_pb2_grpc.FeatureServiceServicer):
    def __init__(self, services: Mapping[str, Mapping[str, Any]]) -> None:
        self._services = {name: _Service(spec) for name, spec in services.items()}

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        service = self._services.get(request.feature_service) or self._services.get(ANY_SERVICE)
        if service is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"feature service {request.feature_service!r}")
        assert service is not None
        response = feature_pb2.GetOnlineFeaturesResponse(feature_names=service.features)
        for index, row in enumerate(request.entity_rows):
            entity = next(iter(row.entity_ids.values()), "")
            known = service.rows.get(entity)
            out = response.rows.add(entity_id=entity, row_index=index)
            out.values.extend(service.missing if known is None else known.values)
            for value in out.values:
                if value.status == feature_pb2.FEATURE_STATUS_PRESENT:
                    value.event_time.CopyFrom(row.timestamp)
            for j, name in service.on_demand:
                sent = row.request_context.get(name)
                if sent is not None and sent.WhichOneof("kind") is not None:
                    out.values[j].status = feature_pb2.FEATURE_STATUS_PRESENT
                    out.values[j].value.CopyFrom(sent)
        return response


async def serve(port: int, spec: dict[str, Any]) -> None:
    """Serve ``spec`` (``write``'s content) on ``127.0.0.1:port`` until SIGTERM."""
    server = grpc.aio.server()
    feature_pb2_grpc.add_FeatureServiceServicer_to_server(StubFeatureService(spec["services"]), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    await checks.set(HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.serving.feature_stub PORT FILE", file=sys.stderr)
        return 2
    asyncio.run(serve(int(argv[0]), json.loads(Path(argv[1]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
