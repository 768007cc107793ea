"""The gRPC adapter of ``Scorer`` (``InferenceService``): passes the request and the caller's remaining time.

Domain errors raised by the scorer become status codes in the server's interceptor. ``request_id``,
``model`` and ``alias`` longer than ``MAX_NAME_BYTES`` are ``InvalidArgument`` before scoring: the
request id is copied into the Prediction event and its Elasticsearch document (a 1 MB one made a 1 MB
Prediction that Elasticsearch refused).
"""

from __future__ import annotations

import grpc

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.validation import check_length
from aimesh.inference.scoring import Scorer

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


class InferenceServiceApi(inference_pb2_grpc.InferenceServiceServicer):
    """``Score`` and ``GetModelSignature`` over one ``Scorer``."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer

    async def Score(
        self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreResponse:
        check_length("request_id", request.request_id)
        check_length("model", request.model)
        check_length("alias", request.alias)
        remaining = context.time_remaining()
        return await self._scorer.score(request, time_left=None if remaining is None or remaining > 1e9 else remaining)

    async def GetModelSignature(
        self, request: inference_pb2.GetModelSignatureRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.GetModelSignatureResponse:
        check_length("model", request.model)
        check_length("alias", request.alias)
        return self._scorer.signature(request)
