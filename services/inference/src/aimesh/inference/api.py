"""The gRPC adapter of ``Scorer`` (``InferenceService``): passes the request and the caller's remaining time.

Domain errors raised by the scorer become status codes in the server's interceptor.
"""

from __future__ import annotations

import grpc

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.inference.scoring import Scorer

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


class InferenceServiceApi(inference_pb2_grpc.InferenceServiceServicer):
    """``Score`` and ``GetModelSignature`` over one ``Scorer``."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer

    async def Score(
        self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreResponse:
        remaining = context.time_remaining()
        return await self._scorer.score(request, time_left=None if remaining is None or remaining > 1e9 else remaining)

    async def GetModelSignature(
        self, request: inference_pb2.GetModelSignatureRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.GetModelSignatureResponse:
        return self._scorer.signature(request)
