"""The contenders as load clients (``bench.feature.load.Client``); ``calls`` counts the requests sent (warm-up
included). (a), the anchor, is ``bench.serving.clients.TritonClient`` (the row inference builds, encoded
beforehand; ``OUTPUT__0`` ``[1, 1]`` read back); (b) is ``bench.inference.perf_analyzer``. Every client
takes the use case's entity type and each entity's request context (empty for a model without context
fields).

- ``UserClient`` (c): what a caller does without aimesh, from the benchmark process: the feature stub's
  ``GetOnlineFeatures`` for the entity (one entity row, the time of the call, the request context for the
  on-demand features), its values put in the model's input order and encoded as the model wants them (a
  number as itself, a category as its vocabulary index + 1, MISSING -> the model's fill), a
  ``tritonclient.grpc.aio`` ``infer`` of ``[1, width]`` FP32 and ``OUTPUT__0`` read back.
- ``ScoreClient`` (d): ``InferenceService.Score`` for the entity with its context over one ``grpc.aio``
  channel (the stack's demo token); a fallback route or a non-finite score is a ``LoadError``.
- ``ScoreBatchClient`` (e): ``InferenceService.ScoreBatch`` with one row per picked entity (100), each with
  its context; a result count other than the rows' or a row not OK is a ``LoadError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.channels import open_caller_channel, open_channel
from bench.feature.load import LoadError
from bench.serving.clients import INPUT_TENSOR

OUTPUT = "OUTPUT__0"
Contexts = Mapping[str, Mapping[str, common_pb2.Value]]
"""Entity id -> the request context its requests carry."""


class _Column:
    """How (c) encodes one model input from a feature value: its fill when MISSING, its vocabulary."""

    def __init__(self, spec: signature_pb2.SignatureInput) -> None:
        self.fill = float(spec.missing_value) if spec.kind == signature_pb2.INPUT_KIND_NUMERIC else 0.0
        self.index = {v: k + 1 for k, v in enumerate(spec.vocabulary)}

    def encode(self, value: feature_pb2.FeatureValue) -> float:
        if value.status != feature_pb2.FEATURE_STATUS_PRESENT:
            return self.fill
        if value.value.WhichOneof("kind") == "string_value":
            return float(self.index.get(value.value.string_value, 0))
        return value.value.double_value


class UserClient:
    """(c): ``GetOnlineFeatures`` of ``feature_service`` then Triton; ``inputs`` are the model's signature
    inputs in tensor order (one column each)."""

    def __init__(
        self,
        features: str,
        triton: str,
        model: str,
        feature_service: str,
        entity: str,
        inputs: Sequence[signature_pb2.SignatureInput],
        contexts: Contexts,
        name: str = "GetOnlineFeatures + Triton",
    ) -> None:
        self.name = name
        self._model = model
        self._feature_service = feature_service
        self._entity = entity
        self._names = tuple(i.name for i in inputs)
        self._columns = [_Column(i) for i in inputs]
        self._contexts = contexts
        self._order: tuple[tuple[str, ...], list[int]] = ((), [])
        self._channel = open_channel(features)
        self._features = feature_pb2_grpc.FeatureServiceStub(self._channel)
        self._triton = InferenceServerClient(url=triton)
        self._requested = [InferRequestedOutput(OUTPUT)]
        self.calls = 0

    def prepare(self, entities: Sequence[str]) -> object:
        return entities[0]

    async def call(self, request: object) -> None:
        assert isinstance(request, str)
        self.calls += 1
        await self.score(request)

    def _positions(self, names: Sequence[str]) -> list[int]:
        """Response column of each model input (worked out once per ``feature_names``)."""
        key = tuple(names)
        if self._order[0] != key:
            self._order = (key, [key.index(name) for name in self._names])
        return self._order[1]

    async def score(self, entity: str) -> float:
        lookup = feature_pb2.GetOnlineFeaturesRequest(feature_service=self._feature_service)
        row = lookup.entity_rows.add(entity_ids={self._entity: entity})
        row.timestamp.GetCurrentTime()
        for field, value in self._contexts.get(entity, {}).items():
            row.request_context[field].CopyFrom(value)
        found = await self._features.GetOnlineFeatures(lookup, timeout=30)
        if len(found.rows) != 1:
            raise LoadError(f"{self.name}: {len(found.rows)} feature rows for one entity")
        values = found.rows[0].values
        encoded = [
            column.encode(values[k])
            for k, column in zip(self._positions(found.feature_names), self._columns, strict=True)
        ]
        x = np.asarray([encoded], dtype=np.float32)
        tensor = InferInput(INPUT_TENSOR, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = await self._triton.infer(
            self._model, [tensor], model_version="1", outputs=self._requested, client_timeout=30
        )
        out = result.as_numpy(OUTPUT)
        if out is None or out.shape != (1, 1):
            raise LoadError(f"{self.name}: {OUTPUT} is {None if out is None else out.shape}")
        return float(out[0, 0])

    async def close(self) -> None:
        await self._channel.close()
        await self._triton.close()


class ScoreClient:
    """(d): ``Score`` of ``model`` (alias champion) for one ``entity`` per request, with its context."""

    def __init__(self, target: str, model: str, entity: str, contexts: Contexts, name: str = "Score") -> None:
        self.name = name
        self._model = model
        self._entity = entity
        self._contexts = contexts
        self._channel = open_caller_channel(target)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self.calls = 0

    def prepare(self, entities: Sequence[str]) -> object:
        return self.request(entities[0])

    def request(self, entity: str) -> inference_pb2.ScoreRequest:
        return inference_pb2.ScoreRequest(
            model=self._model, entity_ids={self._entity: entity}, context=self._contexts.get(entity, {})
        )

    async def call(self, request: object) -> None:
        assert isinstance(request, inference_pb2.ScoreRequest)
        self.calls += 1
        await self.answer(request)

    async def answer(self, request: inference_pb2.ScoreRequest) -> inference_pb2.ScoreResponse:
        response = await self._stub.Score(request, timeout=30)
        if response.route != inference_pb2.ROUTE_CHAMPION or not math.isfinite(response.score):
            raise LoadError(
                f"{self.name}: route {inference_pb2.Route.Name(response.route)}, score {response.score} "
                f"for {dict(request.entity_ids)}"
            )
        return response

    async def close(self) -> None:
        await self._channel.close()


class ScoreBatchClient:
    """(e): ``ScoreBatch`` of ``model`` (alias champion), one row per picked ``entity``, with its context."""

    def __init__(self, target: str, model: str, entity: str, contexts: Contexts, name: str = "ScoreBatch") -> None:
        self.name = name
        self._model = model
        self._entity = entity
        self._contexts = contexts
        self._channel = open_caller_channel(target)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self.calls = 0

    def prepare(self, entities: Sequence[str]) -> object:
        return self.request(entities)

    def request(self, entities: Sequence[str], request_ids: Sequence[str] = ()) -> inference_pb2.ScoreBatchRequest:
        """One row per entity; request ids (``request_ids``, or none: inference generates them, as for the
        Score requests of (d))."""
        ids = list(request_ids) or [""] * len(entities)
        return inference_pb2.ScoreBatchRequest(
            model=self._model,
            rows=[
                inference_pb2.ScoreBatchRow(
                    request_id=i, entity_ids={self._entity: e}, context=self._contexts.get(e, {})
                )
                for i, e in zip(ids, entities, strict=True)
            ],
        )

    async def call(self, request: object) -> None:
        assert isinstance(request, inference_pb2.ScoreBatchRequest)
        self.calls += 1
        await self.answer(request)

    async def answer(self, request: inference_pb2.ScoreBatchRequest) -> inference_pb2.ScoreBatchResponse:
        response = await self._stub.ScoreBatch(request, timeout=30)
        if len(response.results) != len(request.rows):
            raise LoadError(f"{self.name}: {len(response.results)} results for {len(request.rows)} rows")
        bad = next((r for r in response.results if r.code != 0), None)
        if bad is not None:
            raise LoadError(f"{self.name}: a row answered code {bad.code}: {bad.message}")
        return response

    async def close(self) -> None:
        await self._channel.close()
