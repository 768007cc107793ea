"""A FeatureService stand-in for the benchmark: ``python -m bench.recommend.feature_stub PORT FILE``.

Answers ``GetOnlineFeatures`` for one entity row from the histories in ``FILE`` (``data.write``): the one
feature, PRESENT, as a list value, with the as-of time as its event time; an unknown entity gets it
MISSING. Responses are built once at start, so a lookup costs the gRPC round trip and little else: the
benchmark measures inference's own overhead on top of Triton, not a feature store (bench/feature does
that). Reports SERVING on the standard health service, as inference's readiness asks. Runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc

HEALTH_NAME = "aimesh.api.feature.v1.FeatureService"


class StubFeatureService(feature_pb2_grpc.FeatureServiceServicer):
    def __init__(self, feature: str, histories: dict[str, list[str]]) -> None:
        self._feature = feature
        self._rows: dict[str, feature_pb2.FeatureValue] = {}
        for entity, items in histories.items():
            value = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_PRESENT)
            value.value.list_value.SetInParent()
            for item in items:
                value.value.list_value.values.add(string_value=item)
            self._rows[entity] = value
        self._missing = feature_pb2.FeatureValue(status=feature_pb2.FEATURE_STATUS_MISSING)

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        response = feature_pb2.GetOnlineFeaturesResponse(feature_names=[self._feature])
        for index, row in enumerate(request.entity_rows):
            entity = next(iter(row.entity_ids.values()), "")
            value = response.rows.add(entity_id=entity, row_index=index).values.add()
            value.CopyFrom(self._rows.get(entity, self._missing))
            if value.status == feature_pb2.FEATURE_STATUS_PRESENT:
                value.event_time.CopyFrom(row.timestamp)
        return response


async def serve(port: int, spec: dict[str, Any]) -> None:
    """Serve ``spec`` (``{"feature": ..., "histories": ...}``) on ``127.0.0.1:port`` until SIGTERM."""
    server = grpc.aio.server()
    feature_pb2_grpc.add_FeatureServiceServicer_to_server(
        StubFeatureService(spec["feature"], spec["histories"]), server
    )
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
        print("usage: python -m bench.recommend.feature_stub PORT FILE", file=sys.stderr)
        return 2
    asyncio.run(serve(int(argv[0]), json.loads(Path(argv[1]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
