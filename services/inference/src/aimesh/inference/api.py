"""The gRPC adapter of ``Scorer`` and ``NextItemRanker`` (``InferenceService``): passes the request and the
caller's remaining time.

Domain errors raised by them become status codes in the server's interceptor. ``request_id``, ``model``
and ``alias`` longer than ``MAX_NAME_BYTES`` are ``InvalidArgument`` before scoring: the request id is
copied into the Prediction event and its Elasticsearch document (a 1 MB one made a 1 MB Prediction that
Elasticsearch refused); so are ScoreBatch's ``model``, ``alias`` and every row's ``request_id``. For the
same reason Recommend's ``context_items`` and ``exclude_items`` hold at most ``MAX_REQUEST_ITEMS`` ids
each, every id at most ``MAX_NAME_BYTES`` (``InvalidArgument`` naming the field or the element).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.errors import InvalidArgument
from aimesh.core.validation import check_length
from aimesh.inference.next_item import NextItemRanker
from aimesh.inference.scoring import Scorer

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
MAX_REQUEST_ITEMS = 1000
"""Most ids a Recommend request's ``context_items`` or ``exclude_items`` may hold."""


def _time_left(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e9 else remaining


def _check_items(field: str, items: Sequence[str]) -> None:
    if len(items) > MAX_REQUEST_ITEMS:
        raise InvalidArgument(f"{field} holds {len(items)} ids; the limit is {MAX_REQUEST_ITEMS}")
    for i, item in enumerate(items):
        check_length(f"{field}[{i}]", item)


class InferenceServiceApi(inference_pb2_grpc.InferenceServiceServicer):
    """``Score``, ``ScoreBatch`` and ``GetModelSignature`` over one ``Scorer``, ``Recommend`` over one
    ``NextItemRanker``; a ScoreBatch holds at most ``max_batch_rows`` rows."""

    def __init__(self, scorer: Scorer, ranker: NextItemRanker, *, max_batch_rows: int = 256) -> None:
        self._scorer = scorer
        self._ranker = ranker
        self._max_batch_rows = max_batch_rows

    async def Score(
        self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreResponse:
        check_length("request_id", request.request_id)
        check_length("model", request.model)
        check_length("alias", request.alias)
        return await self._scorer.score(request, time_left=_time_left(context))

    async def ScoreBatch(
        self, request: inference_pb2.ScoreBatchRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreBatchResponse:
        check_length("model", request.model)
        check_length("alias", request.alias)
        for j, row in enumerate(request.rows):
            check_length(f"rows[{j}].request_id", row.request_id)
        return await self._scorer.score_batch(request, time_left=_time_left(context), max_rows=self._max_batch_rows)

    async def GetModelSignature(
        self, request: inference_pb2.GetModelSignatureRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.GetModelSignatureResponse:
        check_length("model", request.model)
        check_length("alias", request.alias)
        return self._scorer.signature(request)

    async def Recommend(
        self, request: inference_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.RecommendResponse:
        check_length("request_id", request.request_id)
        check_length("model", request.model)
        check_length("alias", request.alias)
        _check_items("context_items", request.context_items)
        _check_items("exclude_items", request.exclude_items)
        return await self._ranker.rank(request, time_left=_time_left(context))
