"""The Score use case, transport-free: route, assemble features, call the model, emit the Prediction.

``Scorer.score`` takes the request and the caller's remaining time; every downstream call gets what is
left of it. Feature values come from the feature service, overridden by the caller's inline values;
features still without a value are fed as 0.0 and listed in ``missing_features``. Raises domain errors:
``InvalidArgument`` (no model, or features needed and no entity ids), ``NotFound``/``Unavailable`` from
routing, the feature service's errors, Triton's (``Unavailable``, ``DeadlineExceeded``), and
``DeadlineExceeded`` when the time ran out between steps.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.inference.v1 import events_pb2, inference_pb2
from aimesh.core.errors import DeadlineExceeded, InvalidArgument
from aimesh.core.model_catalog import ModelCatalog
from aimesh.inference import metrics
from aimesh.inference.features import FeatureLookup, FeatureSource, OnlineFeatures
from aimesh.inference.predictions import PredictionPublisher
from aimesh.inference.routing import resolve
from aimesh.inference.triton import ModelRunner


@dataclass(frozen=True, slots=True)
class _Deadline:
    """The caller's deadline on the event loop's clock; ``None`` means no deadline."""

    at: float | None

    def left(self, step: str) -> float | None:
        if self.at is None:
            return None
        remaining = self.at - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise DeadlineExceeded(f"the deadline passed before {step}")
        return remaining


class Scorer:
    """Scores requests against the catalog's routes (see the module doc)."""

    def __init__(
        self,
        catalog: ModelCatalog,
        features: FeatureSource,
        runner: ModelRunner,
        publisher: PredictionPublisher,
        *,
        default_alias: str = "champion",
        key_entity: str = "card",
    ) -> None:
        self._catalog = catalog
        self._features = features
        self._runner = runner
        self._publisher = publisher
        self._default_alias = default_alias
        self._key_entity = key_entity

    async def score(
        self, request: inference_pb2.ScoreRequest, *, time_left: float | None
    ) -> inference_pb2.ScoreResponse:
        """Score one request within ``time_left`` seconds (None: no deadline); see the module doc."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        deadline = _Deadline(None if time_left is None else asyncio.get_running_loop().time() + time_left)
        if not request.model:
            raise InvalidArgument("model is required")
        decision = resolve(
            self._catalog,
            request.model,
            alias=request.alias if request.HasField("alias") else self._default_alias,
            version=request.version if request.HasField("version") else None,
        )
        target = decision.target
        online = await self._lookup(
            request, target.features, target.feature_service or target.model_name, now, deadline
        )
        row: list[float] = []
        missing: list[str] = []
        for name in target.features:
            value = request.features.get(name, online.values.get(name))
            if value is None:
                missing.append(name)
                value = 0.0
            row.append(value)
        score = await self._runner.score(
            target.triton_model_name, target.triton_model_version, row, time_left=deadline.left("the model call")
        )
        freshness = max((now - online.newest_event_time).total_seconds(), 0.0) if online.newest_event_time else 0.0
        request_id = request.request_id or str(uuid.uuid4())
        event_id = str(uuid.uuid4())
        elapsed = time.perf_counter() - started
        metrics.SCORE_LATENCY.labels(target.model_name, inference_pb2.Route.Name(decision.route)).observe(elapsed)
        prediction = events_pb2.Prediction(
            request_id=request_id,
            event_id=event_id,
            model_name=target.model_name,
            model_version=target.version,
            score=score,
            features=dict(zip(target.features, row, strict=True)),
            latency=_duration(elapsed),
            time=_timestamp(now),
            route=decision.route,
            alias=decision.alias,
            entity_ids=dict(request.entity_ids),
            feature_freshness_seconds=freshness,
            missing_features=missing,
        )
        await self._publisher.submit(prediction, key=request.entity_ids.get(self._key_entity) or request_id)
        return inference_pb2.ScoreResponse(
            request_id=request_id,
            score=score,
            model_name=target.model_name,
            model_version=target.version,
            route=decision.route,
            feature_freshness_seconds=freshness,
            missing_features=missing,
            event_id=event_id,
        )

    async def _lookup(
        self,
        request: inference_pb2.ScoreRequest,
        features: tuple[str, ...],
        feature_service: str,
        now: datetime,
        deadline: _Deadline,
    ) -> OnlineFeatures:
        """Online values for the features the caller did not supply (none asked when all are inline)."""
        needed = [name for name in features if name not in request.features]
        if not needed:
            return OnlineFeatures()
        if not request.entity_ids:
            raise InvalidArgument(f"entity_ids is empty and these features have no inline value: {', '.join(needed)}")
        lookup = FeatureLookup(feature_service, request.entity_ids, request.context, as_of=now)
        return await self._features.online_features(lookup, time_left=deadline.left("the feature lookup"))


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def _timestamp(at: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t
