"""In-memory fakes of the training service's own interfaces (FeatureClient, ModelServer, RawPublisher)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument, NotFound, Unavailable
from aimesh.core.feature_client import HistoricalValues
from aimesh.core.signature import scalar
from aimesh.training.model import load_torchscript, predict_outputs

from . import synthetic  # type: ignore[attr-defined]


class FakeFeatures:
    """Serves ``synthetic.toy_features`` as feature service ``toy_v1``; ``down=True`` behaves like an
    unreachable service."""

    SERVICE = "toy_v1"

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.requests: list[tuple[str, int]] = []

    def _check(self, feature_service: str) -> None:
        if self.down:
            raise Unavailable("feature service at fake:0 is unavailable (UNAVAILABLE: connection refused)")
        if feature_service != self.SERVICE:
            raise NotFound(f"feature service {feature_service!r} does not exist; feature services: {self.SERVICE}")

    async def online(
        self, request: feature_pb2.GetOnlineFeaturesRequest, *, time_left: float | None
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        self._check(request.feature_service)
        if not request.entity_rows and not request.entity_ids:
            raise InvalidArgument("no rows: set entity_ids or entity_rows")  # as the real service answers
        return feature_pb2.GetOnlineFeaturesResponse(feature_names=synthetic.FEATURE_NAMES)

    async def historical(self, feature_service: str, rows: Sequence[feature_pb2.EntityRow]) -> HistoricalValues:
        self.requests.append((feature_service, len(rows)))
        self._check(feature_service)
        values = []
        for row in rows:
            context = {k: scalar(v) for k, v in row.request_context.items()}
            values.append(
                synthetic.toy_features(
                    float(context["amount"]),  # type: ignore[arg-type]
                    str(context["merchant_category"]),
                    str(context["country"]),
                    row.timestamp.ToDatetime(),
                    str(context["merchant_id"]),
                )
            )
        return HistoricalValues(names=list(synthetic.FEATURE_NAMES), values=values, missing=0)


class FakeModelServer:
    """Scores with the TorchScript file in the repository, as the real python backend does.

    A loaded model serves every version on disk; ``down=True`` behaves like an unreachable Triton.
    """

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self.loaded: list[str] = []
        self.down = False
        self.refused_calls = 0

    def _check_up(self) -> None:
        if self.down:
            self.refused_calls += 1
            raise Unavailable("Triton at fake:8001 is unavailable (UNAVAILABLE: connection refused)")

    async def load(self, name: str) -> float:
        self._check_up()
        if not (self.repository / name / "config.pbtxt").exists():
            raise Unavailable(f"no model {name}")
        self.loaded.append(name)
        return 0.01

    async def is_ready(self, name: str, version: int) -> bool:
        self._check_up()
        return name in self.loaded and (self.repository / name / str(version) / "model.pt").exists()

    async def wait_ready(self, name: str, version: int, within_s: float = 60.0) -> None:
        if not (self.repository / name / str(version) / "model.pt").exists():
            raise Unavailable(f"{name} v{version} is not READY")

    async def infer(
        self, name: str, version: int, x: NDArray[np.float32], outputs: Sequence[str] = ("OUTPUT__0",)
    ) -> NDArray[np.float32]:
        """Every output of the module side by side (the deployer asks for all of them)."""
        return predict_outputs(load_torchscript(self.repository / name / str(version) / "model.pt"), x)


class FakePublisher:
    """Records what the outbox relay sends; ``fail`` makes sends raise like an unreachable broker."""

    source = "training"

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Any, dict[str, bytes]]] = []
        self.fail = False

    async def send_raw(
        self, topic: str, value: bytes, *, key: str | bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((topic, value, key, dict(headers)))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
        return [(v, h) for t, v, _k, h in self.sent if t == topic]
