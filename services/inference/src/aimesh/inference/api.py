"""The gRPC adapter of ``Scorer`` and ``NextItemRanker`` (``InferenceService``): checks the request
limits, then passes the request and the caller's remaining time.

Domain errors raised by them become status codes in the server's interceptor. Before any lookup every
request is held to ``RequestLimits`` (the service's ``INFERENCE_MAX_*`` settings, documented in the
proto's service comment), each violation ``InvalidArgument`` naming the field and the limit:
``request_id``, ``model``, ``alias`` and every key and value of ``entity_ids`` at most ``id_bytes``
UTF-8 bytes (they are copied into the Prediction event and its Elasticsearch document: a 1 MB request id
made a 1 MB Prediction that Elasticsearch refused); ``entity_ids``, ``features`` and ``context`` at most
``map_entries`` entries each (per row of a ScoreBatch); Recommend's ``context_items`` and
``exclude_items`` at most ``request_items`` ids, each at most ``id_bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.errors import InvalidArgument
from aimesh.core.validation import MAX_NAME_BYTES, check_length
from aimesh.inference.next_item import NextItemRanker
from aimesh.inference.scoring import RowFields, Scorer

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The bounds every request is checked against (see the module doc)."""

    id_bytes: int = MAX_NAME_BYTES
    map_entries: int = 64
    request_items: int = 1000

    def names(self, **fields: str) -> None:
        """``InvalidArgument`` for the first of ``fields`` (name -> value) longer than ``id_bytes``."""
        for field, value in fields.items():
            check_length(field, value, self.id_bytes)

    def entries(self, field: str, values: Mapping[str, object] | Sequence[object]) -> None:
        """``InvalidArgument`` when the map or list ``field`` holds more than ``map_entries`` entries."""
        if len(values) > self.map_entries:
            raise InvalidArgument(f"{field} holds {len(values)} entries; the limit is {self.map_entries}")

    def row(self, prefix: str, fields: RowFields) -> None:
        """Check a scored row's request id, entity ids and map sizes; ``prefix`` names the row (``rows[3].``)."""
        check_length(f"{prefix}request_id", fields.request_id, self.id_bytes)
        self.entity_ids(prefix, fields.entity_ids)
        self.entries(f"{prefix}features", fields.features)
        self.entries(f"{prefix}context", fields.context)

    def entity_ids(self, prefix: str, entity_ids: Mapping[str, str]) -> None:
        self.entries(f"{prefix}entity_ids", entity_ids)
        for entity_type, entity_id in entity_ids.items():
            check_length(f"{prefix}entity_ids key", entity_type, self.id_bytes)
            check_length(f"{prefix}entity_ids[{entity_type!r}]", entity_id, self.id_bytes)

    def items(self, field: str, items: Sequence[str]) -> None:
        """``InvalidArgument`` when ``items`` holds more than ``request_items`` ids or one is too long."""
        if len(items) > self.request_items:
            raise InvalidArgument(f"{field} holds {len(items)} ids; the limit is {self.request_items}")
        for i, item in enumerate(items):
            check_length(f"{field}[{i}]", item, self.id_bytes)


def _time_left(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e9 else remaining


class InferenceServiceApi(inference_pb2_grpc.InferenceServiceServicer):
    """``Score``, ``ScoreBatch`` and ``GetModelSignature`` over one ``Scorer``, ``Recommend`` over one
    ``NextItemRanker``; a ScoreBatch holds at most ``max_batch_rows`` rows, every request is held to
    ``limits``."""

    def __init__(
        self,
        scorer: Scorer,
        ranker: NextItemRanker,
        *,
        max_batch_rows: int = 256,
        limits: RequestLimits | None = None,
    ) -> None:
        self._scorer = scorer
        self._ranker = ranker
        self._max_batch_rows = max_batch_rows
        self._limits = limits or RequestLimits()

    async def Score(
        self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreResponse:
        self._limits.names(model=request.model, alias=request.alias)
        self._limits.row("", request)
        return await self._scorer.score(request, time_left=_time_left(context))

    async def ScoreBatch(
        self, request: inference_pb2.ScoreBatchRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreBatchResponse:
        self._limits.names(model=request.model, alias=request.alias)
        for j, row in enumerate(request.rows[: self._max_batch_rows]):
            self._limits.row(f"rows[{j}].", row)
        return await self._scorer.score_batch(request, time_left=_time_left(context), max_rows=self._max_batch_rows)

    async def GetModelSignature(
        self, request: inference_pb2.GetModelSignatureRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.GetModelSignatureResponse:
        self._limits.names(model=request.model, alias=request.alias)
        return self._scorer.signature(request)

    async def Recommend(
        self, request: inference_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.RecommendResponse:
        self._limits.names(request_id=request.request_id, model=request.model, alias=request.alias)
        self._limits.entity_ids("", request.entity_ids)
        self._limits.items("context_items", request.context_items)
        self._limits.items("exclude_items", request.exclude_items)
        return await self._ranker.rank(request, time_left=_time_left(context))
