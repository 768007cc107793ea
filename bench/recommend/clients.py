"""The contenders as load clients (``bench.feature.load.Client``): each request is one entity; ``calls``
counts the requests sent (warm-up included).

- ``RecommendClient``: ``InferenceService.Recommend`` over one ``grpc.aio`` channel (the stack's demo token),
  ``k`` items asked; an answer that is a fallback or holds another number of items is a ``LoadError``.
- ``TritonClient``: the anchor, ``tritonclient.grpc.aio`` ``infer`` of the same Triton model with the row
  Recommend would build for the entity (encoded beforehand, outside the timing), both outputs read back as
  numpy; a shape other than ``[1, max_k]`` is a ``LoadError``.
- ``LookupClient``: the feature stub's ``GetOnlineFeatures`` alone (what Recommend adds before Triton).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.channels import open_caller_channel, open_channel
from bench.feature.load import LoadError
from bench.recommend.model import ENTITY, FEATURE_SERVICE

OUTPUTS = ("OUTPUT__0", "OUTPUT__1")


class RecommendClient:
    def __init__(self, target: str, model: str, k: int, name: str = "Recommend") -> None:
        self.name = name
        self._model = model
        self._k = k
        self._channel = open_caller_channel(target)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self.calls = 0

    def prepare(self, cards: Sequence[str]) -> object:
        return inference_pb2.RecommendRequest(model=self._model, entity_ids={ENTITY: cards[0]}, k=self._k)

    async def call(self, request: object) -> None:
        assert isinstance(request, inference_pb2.RecommendRequest)
        self.calls += 1
        response = await self._stub.Recommend(request, timeout=30)
        if response.fallback or len(response.items) != self._k:
            raise LoadError(f"{self.name}: fallback={response.fallback}, {len(response.items)} items for k={self._k}")

    async def close(self) -> None:
        await self._channel.close()


class TritonClient:
    def __init__(self, url: str, model: str, rows: Mapping[str, Sequence[float]], max_k: int) -> None:
        self.name = "Triton direct"
        self._model = model
        self._rows = rows
        self._max_k = max_k
        self._client = InferenceServerClient(url=url)
        self.calls = 0

    def prepare(self, cards: Sequence[str]) -> object:
        x = np.asarray([self._rows[cards[0]]], dtype=np.float32)
        tensor = InferInput("INPUT__0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        return tensor

    async def call(self, request: object) -> None:
        self.calls += 1
        await self.outputs(request)

    async def outputs(self, request: object) -> list[NDArray[np.float32]]:
        """Both outputs of one prepared request, each ``[1, max_k]``; ``LoadError`` for another shape."""
        assert isinstance(request, InferInput)
        result = await self._client.infer(
            self._model,
            [request],
            model_version="1",
            outputs=[InferRequestedOutput(name) for name in OUTPUTS],
            client_timeout=30,
        )
        found = []
        for name in OUTPUTS:
            out = result.as_numpy(name)
            if out is None or out.shape != (1, self._max_k):
                raise LoadError(f"{self.name}: {name} is {None if out is None else out.shape}")
            found.append(out)
        return found

    async def close(self) -> None:
        await self._client.close()


class LookupClient:
    def __init__(self, target: str) -> None:
        self.name = "feature stub lookup"
        self._channel = open_channel(target)
        self._stub = feature_pb2_grpc.FeatureServiceStub(self._channel)
        self.calls = 0

    def prepare(self, cards: Sequence[str]) -> object:
        request = feature_pb2.GetOnlineFeaturesRequest(feature_service=FEATURE_SERVICE)
        request.entity_rows.add(entity_ids={ENTITY: cards[0]}).timestamp.GetCurrentTime()
        return request

    async def call(self, request: object) -> None:
        assert isinstance(request, feature_pb2.GetOnlineFeaturesRequest)
        self.calls += 1
        response = await self._stub.GetOnlineFeatures(request, timeout=30)
        if len(response.rows) != 1:
            raise LoadError(f"{self.name}: {len(response.rows)} rows")

    async def close(self) -> None:
        await self._channel.close()
