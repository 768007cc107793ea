"""Load clients (``bench.feature.load.Client``) both serving benchmarks use; ``calls`` counts the requests
sent (warm-up included).

- ``TritonClient``: the anchor, ``tritonclient.grpc.aio`` ``infer`` of a Triton model with the rows inference
  would build for the picked entities (encoded beforehand, outside the timing), every output read back as
  numpy; an output of another shape than ``[rows, width]`` is a ``LoadError``.
- ``LookupClient``: the feature stub's ``GetOnlineFeatures`` for one entity alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.channels import open_channel
from bench.feature.load import LoadError

INPUT_TENSOR = "INPUT__0"


class TritonClient:
    """``infer`` of ``model`` version 1; ``outputs`` maps each output tensor to its values per row."""

    def __init__(
        self,
        url: str,
        model: str,
        rows: Mapping[str, Sequence[float]],
        outputs: Mapping[str, int],
        name: str = "Triton direct",
    ) -> None:
        self.name = name
        self._model = model
        self._rows = rows
        self._widths = dict(outputs)
        self._requested = [InferRequestedOutput(tensor) for tensor in self._widths]
        self._client = InferenceServerClient(url=url)
        self.calls = 0

    def prepare(self, entities: Sequence[str]) -> object:
        x = np.asarray([self._rows[e] for e in entities], dtype=np.float32)
        tensor = InferInput(INPUT_TENSOR, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        return tensor

    async def call(self, request: object) -> None:
        self.calls += 1
        await self.outputs(request)

    async def outputs(self, request: object) -> list[NDArray[np.float32]]:
        """Every output of one prepared request, in ``outputs``' order, each ``[rows, width]``; ``LoadError``
        for another shape."""
        assert isinstance(request, InferInput)
        rows = request.shape()[0]
        result = await self._client.infer(
            self._model, [request], model_version="1", outputs=self._requested, client_timeout=30
        )
        found = []
        for tensor, width in self._widths.items():
            out = result.as_numpy(tensor)
            if out is None or out.shape != (rows, width):
                raise LoadError(f"{self.name}: {tensor} is {None if out is None else out.shape}, not {(rows, width)}")
            found.append(out)
        return found

    async def close(self) -> None:
        await self._client.close()


class LookupClient:
    """``GetOnlineFeatures`` of ``feature_service`` for one entity (``entity`` type) per request."""

    def __init__(self, target: str, feature_service: str, entity: str, name: str = "feature stub lookup") -> None:
        self.name = name
        self._feature_service = feature_service
        self._entity = entity
        self._channel = open_channel(target)
        self._stub = feature_pb2_grpc.FeatureServiceStub(self._channel)
        self.calls = 0

    def prepare(self, entities: Sequence[str]) -> object:
        request = feature_pb2.GetOnlineFeaturesRequest(feature_service=self._feature_service)
        request.entity_rows.add(entity_ids={self._entity: entities[0]}).timestamp.GetCurrentTime()
        return request

    async def call(self, request: object) -> None:
        assert isinstance(request, feature_pb2.GetOnlineFeaturesRequest)
        self.calls += 1
        response = await self._stub.GetOnlineFeatures(request, timeout=30)
        if len(response.rows) != 1:
            raise LoadError(f"{self.name}: {len(response.rows)} rows")

    async def close(self) -> None:
        await self._channel.close()
