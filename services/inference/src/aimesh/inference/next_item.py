"""The Recommend use case, transport-free: route, check, assemble the sequence, call the model, emit the Prediction.

A version is served when its signature is a ``TASK_NEXT_ITEM`` one (else ``FailedPrecondition``): an
output holding vocabulary indexes (``SignatureOutput.indexes_vocabulary_of``, the ``items`` output),
naming a ``INPUT_KIND_SEQUENCE`` input whose vocabulary the indexes point into (index ``i + 1`` for
``vocabulary[i]``), and an output named ``scores``, both of one fixed size ``max_k`` (the items output's
shape) - else ``FailedPrecondition`` naming what is wrong. Then, in order:

- ``k`` 0 means ``min(10, max_k)``; any other ``k`` outside ``[1, max_k]`` is ``InvalidArgument`` naming
  ``k`` and the range; a version whose item vocabulary is empty is ``FailedPrecondition``;
- the request must carry the signature's entity ids (``check_request``, no context fields: a signature
  requiring some cannot be served by Recommend and says which are missing); every input's online value
  is read from the version's feature service for ``entity_ids`` (as of now);
- the sequence input is the online history (a list value, oldest first; MISSING counts as empty) followed
  by ``context_items``, encoded with the other inputs by ``InputEncoder`` (its newest ``length`` elements,
  0 for an item outside the vocabulary); context items outside the vocabulary are listed once each, in
  request order, in ``unknown_items``;
- when no encoded sequence column holds a known item (no history, an empty one, or only unknown items,
  and no known context item) the model is not called: the answer is the signature's ``popular_items``
  minus ``exclude_items``, the first ``k``, scored by ``popular_item_shares`` (0 where it has none), route
  ``ROUTE_FALLBACK``, ``fallback`` true;
- otherwise Triton returns the top ``max_k`` indexes (``items``) and their scores; indexes are mapped to
  item ids (one outside ``[1, len(vocabulary)]`` or not an integer is ``FailedPrecondition``: the model
  disagrees with its signature), excluded items dropped, the first ``k`` answered (fewer only when
  exclusions leave fewer).

Outages (Score's circuit breakers: the feature service's, one per Triton model version): the feature
lookup and the model call get the caller's remaining time minus ``fallback_reserve_s``; when either
fails with ``Unavailable`` or ``DeadlineExceeded`` (down, too slow, its circuit open) the answer is the
popular items as above (``ROUTE_FALLBACK``, ``fallback`` true, a Prediction with no online values;
counted in ``aimesh_inference_fallback_total``), ahead of the caller's deadline; ``Unavailable`` naming the
cause when the signature lists no popular items. A shadow's outage is the shadow's failure, never a fallback.

A Prediction event (``items``, ``context_items``, ``exclude_items``, ``k`` as answered; ``score`` the first
item's score, 0 when none; ``features`` the encoded single-column inputs) goes through the same publisher as
Score's, keyed like Score's. A request naming no alias and no version is routed by the model's traffic
policy like Score's (``routing.route_request``): its sticky canary (``ROUTE_CANARY``) and its shadow (the
answered request is answered again by the shadow version in the background, ``shadows.ShadowTasks``: a
Prediction with ``ROUTE_SHADOW`` and ``shadow`` true, the caller's request id, never returned; a popular-items
answer is not mirrored). Raises
domain errors: the above, ``NotFound``/``Unavailable`` from routing, the feature service's request errors,
Triton's ``FailedPrecondition``, and the outages above without popular items.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

import numpy as np
from numpy.typing import NDArray

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2, inference_pb2
from aimesh.core.auth import current_tenant
from aimesh.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from aimesh.core.model_catalog import ModelCatalog, ModelVersion
from aimesh.core.signature import InputEncoder, Scalar, check_request
from aimesh.inference import metrics
from aimesh.inference.breaker import OUTAGE, CircuitBreaker, ModelBreakers, guarded, outage_cause
from aimesh.inference.features import FeatureLookup, FeatureSource, OnlineFeatures
from aimesh.inference.predictions import PredictionPublisher, answered_event_id, prediction_key
from aimesh.inference.routing import route_request
from aimesh.inference.scoring import single_columns
from aimesh.inference.shadows import ShadowTasks
from aimesh.inference.timing import Deadline, duration, timestamp
from aimesh.inference.triton import ModelRunner

DEFAULT_K = 10
"""The k of a request that sets none (or ``max_k`` when the version answers fewer)."""
SCORES_OUTPUT = "scores"


@dataclass(frozen=True, slots=True)
class _Plan:
    """How Recommend requests for one ``TASK_NEXT_ITEM`` version are encoded and answered (from its signature)."""

    version: ModelVersion
    names: tuple[str, ...]
    encoder: InputEncoder
    sequence: int
    """Index of the sequence input among the signature's inputs."""
    vocabulary: tuple[str, ...]
    items: NDArray[np.object_]
    """``vocabulary`` as an array, indexed by ``index - 1``."""
    known: frozenset[str]
    items_tensor: str
    scores_tensor: str
    max_k: int
    popular: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, version: ModelVersion) -> _Plan:
        """The plan of ``version``; ``FailedPrecondition`` when its signature is not a next-item one (module doc)."""
        signature = version.signature
        label = _label(version)
        if signature.task != signature_pb2.TASK_NEXT_ITEM:
            raise FailedPrecondition(
                f"{label} is a {signature_pb2.Task.Name(signature.task)} model; Recommend serves TASK_NEXT_ITEM "
                "models only (Score serves the others)"
            )
        items = next((o for o in signature.outputs if o.indexes_vocabulary_of), None)
        if items is None:
            raise FailedPrecondition(f"{label} has no output of item indexes (SignatureOutput.indexes_vocabulary_of)")
        names = tuple(i.name for i in signature.inputs)
        if items.indexes_vocabulary_of not in names:
            raise FailedPrecondition(
                f"{label}: output {items.name!r} indexes the vocabulary of {items.indexes_vocabulary_of!r}, "
                f"which is not one of its inputs ({', '.join(names)})"
            )
        j = names.index(items.indexes_vocabulary_of)
        source = signature.inputs[j]
        if source.kind != signature_pb2.INPUT_KIND_SEQUENCE:
            raise FailedPrecondition(
                f"{label}: input {source.name!r} that output {items.name!r} indexes is "
                f"{signature_pb2.InputKind.Name(source.kind)}, not INPUT_KIND_SEQUENCE"
            )
        scores = next((o for o in signature.outputs if o.name == SCORES_OUTPUT), None)
        if scores is None:
            raise FailedPrecondition(f"{label} has no output {SCORES_OUTPUT!r}")
        max_k = math.prod(items.shape) if items.shape and all(d > 0 for d in items.shape) else 0
        if max_k < 1:
            raise FailedPrecondition(f"{label}: output {items.name!r} has no fixed size (shape {list(items.shape)})")
        shares = list(signature.popular_item_shares)
        popular = tuple((item, shares[i] if i < len(shares) else 0.0) for i, item in enumerate(signature.popular_items))
        return cls(
            version=version,
            names=names,
            encoder=InputEncoder(signature.inputs),
            sequence=j,
            vocabulary=tuple(source.vocabulary),
            items=np.asarray(source.vocabulary, dtype=object),
            known=frozenset(source.vocabulary),
            items_tensor=items.tensor,
            scores_tensor=scores.tensor,
            max_k=max_k,
            popular=popular,
        )

    def k_of(self, asked: int) -> int:
        """The k to answer for the request's ``k``; ``InvalidArgument`` naming k and the range."""
        if asked == 0:
            return min(DEFAULT_K, self.max_k)
        if not 1 <= asked <= self.max_k:
            raise InvalidArgument(
                f"k is {asked}; {_label(self.version)} answers k in [1, {self.max_k}] (0 means {DEFAULT_K})"
            )
        return asked

    def ranked(self, tensors: Mapping[str, Sequence[float]]) -> list[tuple[str, float]]:
        """The model's (item, score) pairs, best first; ``FailedPrecondition`` when they disagree with the signature."""
        label = _label(self.version)
        indexes, scores = tensors.get(self.items_tensor), tensors.get(self.scores_tensor)
        for tensor, found in ((self.items_tensor, indexes), (self.scores_tensor, scores)):
            if found is None or len(found) != self.max_k:
                got = "no tensor" if found is None else f"{len(found)} values"
                raise FailedPrecondition(f"{label} returned {got} in {tensor!r}; its signature says {self.max_k}")
        assert indexes is not None and scores is not None
        values = np.asarray(indexes, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.floor(values)) | (values < 1) | (values > len(self.vocabulary))
        if bad.any():
            raise FailedPrecondition(
                f"{label} returned index {values[bad.argmax()]:g} in {self.items_tensor!r}; its vocabulary has "
                f"{len(self.vocabulary)} items (indexes 1..{len(self.vocabulary)})"
            )
        items: list[str] = self.items[values.astype(np.int64) - 1].tolist()
        return list(zip(items, scores, strict=True))


def _label(version: ModelVersion) -> str:
    return f"model {version.model_name!r} v{version.version}"


def _encode(
    plan: _Plan, request: inference_pb2.RecommendRequest, online: OnlineFeatures
) -> tuple[list[float], list[str]]:
    """The model's input row (the online history followed by the context items, the other inputs' online
    values) and the inputs fed their fill."""
    history = online.values.get(plan.names[plan.sequence])
    values: list[Scalar] = [online.values.get(name) for name in plan.names]
    values[plan.sequence] = (*(history if isinstance(history, tuple) else ()), *request.context_items)
    missing = [name for j, name in enumerate(plan.names) if plan.encoder.is_missing(j, online.values.get(name))]
    return plan.encoder.row(values), missing


class NextItemRanker:
    """Answers Recommend requests against the catalog's routes (see the module doc)."""

    def __init__(
        self,
        catalog: ModelCatalog,
        features: FeatureSource,
        runner: ModelRunner,
        publisher: PredictionPublisher,
        *,
        default_alias: str = "champion",
        shadows: ShadowTasks | None = None,
        fallback_reserve_s: float = 0.02,
        feature_breaker: CircuitBreaker | None = None,
        triton_breakers: ModelBreakers | None = None,
    ) -> None:
        self._catalog = catalog
        self._shadows = shadows
        """Where mirrored requests are answered again; None: the traffic policy's shadow is not mirrored."""
        self._reserve_s = fallback_reserve_s
        self.feature_breaker = feature_breaker or CircuitBreaker("the feature service")
        self.triton_breakers = triton_breakers or ModelBreakers("Triton")
        self._features = features
        self._runner = runner
        self._publisher = publisher
        self._default_alias = default_alias
        self._plans: dict[tuple[str, int], _Plan] = {}

    def _plan(self, target: ModelVersion) -> _Plan:
        key = (target.model_name, target.version)
        plan = self._plans.get(key)
        if plan is None or plan.version is not target:
            plan = self._plans[key] = _Plan.of(target)
        return plan

    async def rank(
        self, request: inference_pb2.RecommendRequest, *, time_left: float | None
    ) -> inference_pb2.RecommendResponse:
        """Answer one request within ``time_left`` seconds (None: no deadline); see the module doc."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        decision = route_request(
            self._catalog,
            request.model,
            request.alias if request.HasField("alias") else None,
            request.version if request.HasField("version") else None,
            default_alias=self._default_alias,
            entity_ids=request.entity_ids,
            request_id=request.request_id,
        )
        answer = await self._recommend(
            decision.target,
            decision.route,
            decision.alias,
            request,
            request_id=request.request_id or str(uuid.uuid4()),
            now=now,
            started=started,
            deadline=Deadline.reserving(time_left, self._reserve_s),
        )
        metrics.NEXT_ITEM_LATENCY.labels(answer.model_name, inference_pb2.Route.Name(answer.route)).observe(
            time.perf_counter() - started
        )
        shadow = decision.shadow
        if (
            shadow is not None
            and self._shadows is not None
            and answer.route != inference_pb2.ROUTE_FALLBACK
            and shadow.mirrors(answer.request_id)
        ):
            self._shadows.start(
                shadow.target,
                1,
                functools.partial(self._shadow, shadow.target, decision.alias, request, answer.request_id, now),
                request_id=answer.request_id,
            )
        return answer

    async def _shadow(
        self,
        target: ModelVersion,
        alias: str,
        request: inference_pb2.RecommendRequest,
        request_id: str,
        now: datetime,
    ) -> list[str]:
        """Answer ``request`` again with the shadow version ``target`` and submit its Prediction
        (``ROUTE_SHADOW``, ``shadow`` true, the caller's request id); raises what ``_recommend`` raises."""
        assert self._shadows is not None
        await self._recommend(
            target,
            inference_pb2.ROUTE_SHADOW,
            alias,
            request,
            request_id=request_id,
            now=now,
            started=time.perf_counter(),
            deadline=Deadline.after(self._shadows.calls_s),
        )
        return []

    async def _lookup(
        self,
        target: ModelVersion,
        request: inference_pb2.RecommendRequest,
        now: datetime,
        deadline: Deadline,
        breaker: CircuitBreaker,
    ) -> OnlineFeatures:
        """The entity's online values, through ``breaker`` within the time left."""
        lookup = FeatureLookup(target.feature_service or target.model_name, request.entity_ids, {}, as_of=now)
        left = deadline.left("the feature lookup")
        [online] = await guarded(breaker, left, lambda: self._features.online_features([lookup], time_left=left))
        return online

    async def _ranked(
        self, plan: _Plan, row: list[float], deadline: Deadline, breakers: ModelBreakers
    ) -> list[tuple[str, float]]:
        """The model's (item, score) pairs for ``row``, through its Triton model version's breaker, within
        the time left."""
        target = plan.version
        left = deadline.left("the model call")
        [tensors] = await guarded(
            breakers.for_model(target.triton_model_name, target.triton_model_version),
            left,
            lambda: self._runner.infer(
                target.triton_model_name,
                target.triton_model_version,
                [row],
                input_tensor=target.signature.input_tensor,
                outputs=[plan.items_tensor, plan.scores_tensor],
                time_left=left,
            ),
        )
        return plan.ranked(tensors)

    async def _recommend(
        self,
        target: ModelVersion,
        route: inference_pb2.Route,
        alias: str,
        request: inference_pb2.RecommendRequest,
        *,
        request_id: str,
        now: datetime,
        started: float,
        deadline: Deadline,
    ) -> inference_pb2.RecommendResponse:
        """``request`` answered by ``target`` on ``route`` (``ROUTE_FALLBACK`` instead for the popular items,
        but a shadow's stays ``ROUTE_SHADOW``), its Prediction submitted (see the module doc)."""
        signature = target.signature
        plan = self._plan(target)
        k = plan.k_of(request.k)
        if not plan.vocabulary:
            raise FailedPrecondition(f"{_label(target)} has an empty item vocabulary: it knows no item to answer")
        check_request(signature, request.entity_ids, {})
        if not request.entity_ids:
            raise InvalidArgument("entity_ids is empty: Recommend reads the entity's history from the feature service")
        live = (self.feature_breaker, self.triton_breakers)
        feature_breaker, triton_breakers = self._shadows.breakers(route, live) if self._shadows else live
        try:
            online = await self._lookup(target, request, now, deadline, feature_breaker)
            row, missing = _encode(plan, request, online)
            fallback = not any(row[plan.encoder.spans[plan.sequence]])
            candidates: Sequence[tuple[str, float]] = (
                plan.popular if fallback else await self._ranked(plan, row, deadline, triton_breakers)
            )
        except OUTAGE as exc:
            if route == inference_pb2.ROUTE_SHADOW:
                raise
            if not plan.popular:
                raise Unavailable(
                    f"{_label(target)} cannot answer now: {exc.message} (its signature lists no popular items to "
                    "fall back on)"
                ) from exc
            metrics.FALLBACK.labels(target.model_name, outage_cause(exc)).inc()
            online = OnlineFeatures()
            row, missing = _encode(plan, request, online)
            fallback, candidates = True, plan.popular
        unknown = [item for item in dict.fromkeys(request.context_items) if item not in plan.known]
        excluded = frozenset(request.exclude_items)
        if fallback and route != inference_pb2.ROUTE_SHADOW:
            route = inference_pb2.ROUTE_FALLBACK
        answer = list(islice(((item, score) for item, score in candidates if item not in excluded), k))
        prediction = events_pb2.Prediction(
            request_id=request_id,
            event_id=str(uuid.uuid4()),
            model_name=target.model_name,
            model_version=target.version,
            score=answer[0][1] if answer else 0.0,
            features=single_columns(plan.encoder, row),
            latency=duration(time.perf_counter() - started),
            time=timestamp(now),
            shadow=route == inference_pb2.ROUTE_SHADOW,
            route=route,
            alias=alias,
            entity_ids=dict(request.entity_ids),
            feature_freshness_seconds=online.freshness(now, plan.names),
            missing_features=missing,
            tenant=current_tenant(),
            items=[item for item, _ in answer],
            context_items=list(request.context_items),
            exclude_items=list(request.exclude_items),
            k=k,
        )
        delivery = await self._publisher.submit(
            prediction, key=prediction_key(signature, request.entity_ids, request_id)
        )
        return inference_pb2.RecommendResponse(
            request_id=request_id,
            model_name=target.model_name,
            model_version=target.version,
            route=route,
            items=[inference_pb2.RecommendedItem(item_id=item, score=score) for item, score in answer],
            fallback=fallback,
            unknown_items=unknown,
            max_k=plan.max_k,
            event_id=answered_event_id(prediction, delivery),
            prediction_delivery=delivery,
        )
