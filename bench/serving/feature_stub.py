"""A FeatureService stand-in for the serving benchmarks: ``python -m bench.serving.feature_stub PORT FILE``.

``FILE`` (``write``) holds ``{"features": [name, ...], "rows": {entity_id: [value, ...]}}``: per entity one
value per feature, a JSON number (a double), a string, a list of strings (a list value) or null (MISSING).
``GetOnlineFeatures`` answers every entity row from it (the entity row's first entity id picks the entity):
the features in that order, PRESENT values with the as-of time as their event time; an unknown entity gets
every feature MISSING. Responses are built once at start, so a lookup costs the gRPC round trip and little
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
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc

HEALTH_NAME = "aimesh.api.feature.v1.FeatureService"

StubValue = float | str | list[str] | None


def write(path: Path, features: Sequence[str], rows: Mapping[str, Sequence[StubValue]]) -> None:
    """The stub's input file: ``rows[entity]`` holds one value per name of ``features``, in order."""
    path.write_text(json.dumps({"features": list(features), "rows": {e: list(v) for e, v in rows.items()}}))


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


class StubFeatureService(feature_pb2_grpc.FeatureServiceServicer):
    def __init__(self, features: Sequence[str], rows: Mapping[str, Sequence[Any]]) -> None:
        self._features = list(features)
        self._rows = {
            entity: feature_pb2.OnlineFeatureRow(entity_id=entity, values=[_value(v) for v in values])
            for entity, values in rows.items()
        }
        self._missing = [feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING) for _ in features]

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        response = feature_pb2.GetOnlineFeaturesResponse(feature_names=self._features)
        for index, row in enumerate(request.entity_rows):
            entity = next(iter(row.entity_ids.values()), "")
            known = self._rows.get(entity)
            out = response.rows.add(entity_id=entity, row_index=index)
            if known is None:
                out.values.extend(self._missing)
                continue
            out.values.extend(known.values)
            for value in out.values:
                if value.status == feature_pb2.FEATURE_STATUS_PRESENT:
                    value.event_time.CopyFrom(row.timestamp)
        return response


async def serve(port: int, spec: dict[str, Any]) -> None:
    """Serve ``spec`` (``write``'s content) on ``127.0.0.1:port`` until SIGTERM."""
    server = grpc.aio.server()
    feature_pb2_grpc.add_FeatureServiceServicer_to_server(StubFeatureService(spec["features"], spec["rows"]), server)
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
