"""Recommend as a load client (``bench.feature.load.Client``): each request is one entity; ``calls`` counts
the requests sent (warm-up included). ``RecommendClient``: ``InferenceService.Recommend`` over one ``grpc.aio``
channel (the stack's demo token), ``k`` items asked; an answer that is a fallback or holds another number of
items is a ``LoadError``. The anchor and the stub's lookup alone are ``bench.serving.clients``' ``TritonClient``
(both outputs, ``[1, max_k]``) and ``LookupClient``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.channels import open_caller_channel
from bench.feature.load import LoadError
from bench.recommend.model import ENTITY


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
