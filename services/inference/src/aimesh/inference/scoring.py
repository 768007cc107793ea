"""The Score use case, transport-free: route, check, assemble inputs, call the model, emit the Prediction.

Everything model-specific comes from the routed version's signature (``ModelVersion.signature``):

- the request must carry an id for each of its ``entity_types`` and each of its ``context_fields``, of
  the right type (``aimesh.core.signature.check_request``: ``InvalidArgument`` naming the field and the
  expected type);
- its inputs, in tensor order, take the caller's inline ``features`` first (keyed by the input's full
  name ``<view>:<feature>`` or, when unambiguous, the bare feature name; finite numbers for numeric
  inputs only), then the feature service's online values (numbers, strings, bools), and are encoded by
  ``InputEncoder`` (categorical: vocabulary index + 1, unknown 0; numeric: missing -> the input's
  ``missing_value``); inputs fed their fill are listed in ``missing_features``;
- the model's outputs are read from the signature's output tensors and returned by output name in
  ``ScoreResponse.outputs``; ``score`` is the first output's value when that output has exactly one
  value (0.0 otherwise);
- Prediction events are keyed by the id of the signature's ``key_entity`` (the request id when the
  signature names none or the request lacks it).

Routing (``routing.route_request``): a Score request naming no alias and no version follows the model's
traffic policy: a sticky share of key entities goes to the canary version (``ROUTE_CANARY``), and a
share of answered requests is mirrored to the shadow version. Mirrored requests are scored again, after
the caller's answer is built, in a background task (``shadows.ShadowTasks``: bounded, timed, counted,
drained on shutdown) with the same steps (their own feature lookup and model call); each Prediction has
``route`` ``ROUTE_SHADOW``, ``shadow`` true, the caller's request id and its own event id, and is never
returned: a shadow never delays nor fails the caller. ``score_batch`` routes each row as Score would
route it alone (``routing.route_rows``): the rows the canary takes are scored by the canary version in
their own lookup and model call, at the same time as the others, and the mirrored rows of a batch go to
the shadow in one background task (one lookup, one model call).

Outages (``breaker.CircuitBreaker``, one for the feature service and one per Triton model version): the feature
lookup and the model call get the caller's remaining time minus ``fallback_reserve_s`` and are
abandoned when they take longer. When either fails with ``Unavailable`` or ``DeadlineExceeded`` (down,
failing, too slow, no time left for it, or its circuit open), Score answers with the model's fallback
(``TrafficPolicy.fallback``, see ``aimesh.core.fallback``), ``route`` ``ROUTE_FALLBACK``, for any route
(alias, pin, canary); no shadow is mirrored:

- a constant, or a rule over the request's context and inline features: ``score`` and
  ``outputs["score"]`` = that score, the routed version's name and number, and a ``ROUTE_FALLBACK``
  Prediction (its own event id, no features);
- a previous version: the request is scored again by that version with what is left of the deadline
  (through its own version's breaker, which the routed version's open breaker does not stop), answered
  with its number and outputs and a ``ROUTE_FALLBACK`` Prediction with its features; when it fails too,
  ``Unavailable`` naming both.

Without a fallback it raises ``Unavailable`` naming the dependency. The reserve keeps either answer ahead
of the caller's deadline. A request the signature or the feature service refuses (``InvalidArgument``,
``NotFound``) or a model answer that does not fit (``FailedPrecondition``) is never replaced by the
fallback. ScoreBatch falls back the same way, per routed version: every accepted row of that version at
once, when its lookup or its model call fails (a previous version scores those rows again in one lookup and
one call); the mirrored rows of a version that fell back are not sent to the shadow.

Every response says what had become of its Prediction (``prediction_delivery``, see
``aimesh.inference.predictions``); a response never names the event id of a Prediction that was lost.

``feature_freshness_seconds`` is the request time minus the newest ``event_time`` among the online
values fed to the model (0 when none carries one, e.g. all inline). ``Scorer.score`` takes the caller's
remaining time; every downstream call gets what is left of it (less the reserve). Raises domain
errors: ``InvalidArgument`` (no model, a request the signature refuses, an inline key matching no input,
inputs needing the feature service and no entity ids), ``NotFound``/``Unavailable`` from routing, the
feature service's request errors, ``FailedPrecondition`` (Triton refused the input, or an output whose
size disagrees with its signature shape or is not finite), and, without a fallback, ``Unavailable``
for a dependency that could not answer in time (see above).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.inference.v1 import events_pb2, inference_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.auth import current_tenant
from aimesh.core.errors import AimeshError, FailedPrecondition, InvalidArgument, Unavailable
from aimesh.core.fallback import kind_of, rule_score
from aimesh.core.model_catalog import ModelCatalog, ModelVersion
from aimesh.core.signature import InputEncoder, Scalar, check_request
from aimesh.inference import metrics
from aimesh.inference.breaker import OUTAGE, CircuitBreaker, ModelBreakers, guarded, outage_cause
from aimesh.inference.features import FeatureLookup, FeatureSource, OnlineFeatures
from aimesh.inference.predictions import PredictionPublisher, answered_event_id, prediction_key
from aimesh.inference.routing import RouteDecision, resolve_request, route_request, route_rows
from aimesh.inference.shadows import ShadowTasks
from aimesh.inference.timing import Deadline, duration, timestamp
from aimesh.inference.triton import ModelRunner


@dataclass(frozen=True, slots=True)
class _Plan:
    """How requests for one model version are checked, encoded and answered, derived once from its signature."""

    version: ModelVersion
    names: tuple[str, ...]
    encoder: InputEncoder
    keys: Mapping[str, int]
    """Inline key -> input index: every full name, and each bare feature name only one input has."""
    ambiguous: Mapping[str, tuple[str, ...]]
    """Bare feature names several inputs share -> those inputs."""
    not_numeric: Mapping[int, str]
    """Input index -> ``categorical`` or ``sequence`` for the inputs an inline number cannot feed."""
    outputs: tuple[signature_pb2.SignatureOutput, ...]

    @classmethod
    def of(cls, version: ModelVersion) -> _Plan:
        signature = version.signature
        names = tuple(i.name for i in signature.inputs)
        bare: dict[str, list[str]] = {}
        for name in names:
            bare.setdefault(name.rpartition(":")[2], []).append(name)
        keys = {short: names.index(full[0]) for short, full in bare.items() if len(full) == 1}
        keys.update({name: j for j, name in enumerate(names)})
        return cls(
            version=version,
            names=names,
            encoder=InputEncoder(signature.inputs),
            keys=keys,
            ambiguous={short: tuple(full) for short, full in bare.items() if len(full) > 1 and short not in keys},
            not_numeric={
                j: signature_pb2.InputKind.Name(i.kind).removeprefix("INPUT_KIND_").lower()
                for j, i in enumerate(signature.inputs)
                if i.kind in (signature_pb2.INPUT_KIND_CATEGORICAL, signature_pb2.INPUT_KIND_SEQUENCE)
            },
            outputs=tuple(signature.outputs),
        )

    @property
    def label(self) -> str:
        return f"model {self.version.model_name!r} v{self.version.version}"

    def inline(self, features: Mapping[str, float]) -> dict[int, float]:
        """Input index -> the caller's inline value; ``InvalidArgument`` naming every key that is refused."""
        found: dict[int, float] = {}
        problems: list[str] = []
        unknown: list[str] = []
        for key in sorted(features):
            value = features[key]
            j = self.keys.get(key)
            if j is None:
                if key in self.ambiguous:
                    problems.append(
                        f"features[{key!r}] names several inputs ({', '.join(self.ambiguous[key])}): use the full name"
                    )
                else:
                    unknown.append(key)
            elif j in self.not_numeric:
                problems.append(
                    f"features[{key!r}] is the {self.not_numeric[j]} input {self.names[j]!r}: inline values are for "
                    "numeric inputs only (send the raw value in context)"
                )
            elif not math.isfinite(value):
                problems.append(f"features[{key!r}] is {value}, expected a finite number")
            elif j in found:
                problems.append(f"features[{key!r}] names input {self.names[j]!r} a second time")
            else:
                found[j] = value
        if unknown:
            listed = ", ".join(repr(k) for k in unknown)
            problems.append(f"features {listed} match no input of {self.label}; its inputs: {', '.join(self.names)}")
        if problems:
            raise InvalidArgument("; ".join(problems))
        return found

    def read_outputs(self, tensors: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
        """Output name -> values; ``FailedPrecondition`` when a tensor is absent or not of the signature's size."""
        out: dict[str, list[float]] = {}
        for output in self.outputs:
            values = tensors.get(output.tensor)
            if values is None:
                raise FailedPrecondition(f"{self.label} returned no tensor {output.tensor!r} (output {output.name!r})")
            size = math.prod(output.shape) if all(d > 0 for d in output.shape) else None
            if size is not None and len(values) != size:
                raise FailedPrecondition(
                    f"{self.label} returned {len(values)} values in {output.tensor!r}; its signature's output "
                    f"{output.name!r} has shape {list(output.shape)}"
                )
            out[output.name] = list(values)
        return out

    def prepare(self, fields: RowFields) -> _Row:
        """Check one request row against the signature and split its inputs into inline and needed;
        ``InvalidArgument`` naming every refused field (see ``check_request`` and ``inline``), or when inputs
        need the feature service and the row has no entity ids. (Lengths and sizes are the API's
        ``RequestLimits``.)"""
        check_request(self.version.signature, fields.entity_ids, fields.context)
        inline = self.inline(fields.features)
        needed = tuple(name for j, name in enumerate(self.names) if j not in inline)
        if needed and not fields.entity_ids:
            raise InvalidArgument(f"entity_ids is empty and these inputs have no inline value: {', '.join(needed)}")
        return _Row(fields, inline, needed)

    def encode(self, row: _Row, online: OnlineFeatures) -> _Encoded:
        """The model's input row: inline values first, then ``online``'s, encoded; and the inputs fed
        their fill."""
        values: list[Scalar] = [
            row.inline[j] if j in row.inline else online.values.get(name) for j, name in enumerate(self.names)
        ]
        missing = [name for j, name in enumerate(self.names) if self.encoder.is_missing(j, values[j])]
        return _Encoded(self.encoder.row(values), missing)

    def check_finite(self, outputs: Mapping[str, Sequence[float]]) -> None:
        """``FailedPrecondition`` naming the first output holding a NaN or an infinity (never returned as a
        score)."""
        for name, values in outputs.items():
            bad = next((v for v in values if not math.isfinite(v)), None)
            if bad is not None:
                raise FailedPrecondition(f"{self.label} returned {bad} in output {name!r}: not a usable score")


class RowFields(Protocol):
    """What one scored row carries: ``ScoreRequest`` and ``ScoreBatchRow`` both have these fields."""

    @property
    def request_id(self) -> str: ...
    @property
    def entity_ids(self) -> Mapping[str, str]: ...
    @property
    def features(self) -> Mapping[str, float]: ...
    @property
    def context(self) -> Mapping[str, common_pb2.Value]: ...


@dataclass(frozen=True, slots=True)
class _Row:
    """A checked row: its fields, its inline values by input index, the inputs left to the feature service."""

    fields: RowFields
    inline: Mapping[int, float]
    needed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A row's encoded model input and the inputs that were fed their fill."""

    values: list[float]
    missing: list[str]


@dataclass(frozen=True, slots=True)
class _Scored:
    """A row the model scored: the checked row, its online values, its encoded input, its outputs by name."""

    row: _Row
    online: OnlineFeatures
    encoded: _Encoded
    outputs: dict[str, list[float]]


@dataclass(slots=True)
class _Batch:
    """The rows of a ScoreBatch one routed version answers, scored, their answers not emitted yet."""

    plan: _Plan
    """The version that answers: the routed one, or the previous version standing in as its fallback."""
    decision: RouteDecision
    """How the rows were routed (before any fallback)."""
    route: inference_pb2.Route
    """The route the rows are answered by: the decision's, or ``ROUTE_FALLBACK``."""
    rows: Sequence[RowFields]
    results: list[inference_pb2.ScoreBatchResult] = field(init=False)
    """One per row: a refused row's status now, an accepted row's answer once ``emit`` ran."""
    pending: list[tuple[int, Callable[[], Awaitable[inference_pb2.ScoreResponse]]]] = field(default_factory=list)
    """(row index, what emits its Prediction and builds its answer) per accepted row."""

    def __post_init__(self) -> None:
        self.results = [inference_pb2.ScoreBatchResult() for _ in self.rows]

    async def emit(self) -> list[inference_pb2.ScoreBatchResult]:
        """Emit the pending rows' Predictions (in row order) and return every row's result."""
        for j, answer in self.pending:
            self.results[j] = inference_pb2.ScoreBatchResult(code=0, response=await answer())
        self.pending.clear()
        return self.results


class Scorer:
    """Scores requests against the catalog's routes and describes their signatures (see the module doc)."""

    def __init__(
        self,
        catalog: ModelCatalog,
        features: FeatureSource,
        runner: ModelRunner,
        publisher: PredictionPublisher,
        *,
        default_alias: str = "champion",
        shadows: ShadowTasks | None = None,
        max_shadow_in_flight: int = 64,
        shadow_timeout_s: float = 2.0,
        fallback_reserve_s: float = 0.02,
        feature_breaker: CircuitBreaker | None = None,
        triton_breakers: ModelBreakers | None = None,
    ) -> None:
        self._catalog = catalog
        self._features = features
        self._runner = runner
        self._publisher = publisher
        self._default_alias = default_alias
        self.shadows = shadows or ShadowTasks(max_in_flight=max_shadow_in_flight, timeout_s=shadow_timeout_s)
        """Where mirrored requests are scored (``max_shadow_in_flight`` and ``shadow_timeout_s`` only shape
        the scorer's own when none is given)."""
        self._reserve_s = fallback_reserve_s
        self.feature_breaker = feature_breaker or CircuitBreaker("the feature service")
        self.triton_breakers = triton_breakers or ModelBreakers("Triton")
        self._plans: dict[tuple[str, int], _Plan] = {}

    def _resolve(self, model: str, alias: str | None, version: int | None) -> RouteDecision:
        return resolve_request(self._catalog, model, alias, version, default_alias=self._default_alias)

    def _plan(self, target: ModelVersion) -> _Plan:
        key = (target.model_name, target.version)
        plan = self._plans.get(key)
        if plan is None or plan.version is not target:
            plan = self._plans[key] = _Plan.of(target)
        return plan

    def signature(self, request: inference_pb2.GetModelSignatureRequest) -> inference_pb2.GetModelSignatureResponse:
        """The signature of the version ``request`` resolves to: pin, alias, else the default alias's version
        (never the traffic policy's canary, which has no entity to be sticky by here). Raises
        ``InvalidArgument`` without a model, ``NotFound`` naming what exists for an unknown model, version
        or alias, ``Unavailable`` while the routing table is empty."""
        target = self._resolve(
            request.model,
            request.alias if request.HasField("alias") else None,
            request.version if request.HasField("version") else None,
        ).target
        return inference_pb2.GetModelSignatureResponse(
            model_name=target.model_name, model_version=target.version, signature=target.signature
        )

    async def score(
        self, request: inference_pb2.ScoreRequest, *, time_left: float | None
    ) -> inference_pb2.ScoreResponse:
        """Score one request within ``time_left`` seconds (None: no deadline); see the module doc."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        deadline = Deadline.reserving(time_left, self._reserve_s)
        decision = route_request(
            self._catalog,
            request.model,
            request.alias if request.HasField("alias") else None,
            request.version if request.HasField("version") else None,
            default_alias=self._default_alias,
            entity_ids=request.entity_ids,
            request_id=request.request_id,
        )
        plan = self._plan(decision.target)
        try:
            scored = await self._run(plan, request, now, deadline)
        except OUTAGE as exc:
            answer = await self._fall_back(
                plan, decision.alias, request, exc, now=now, started=started, deadline=deadline
            )
        else:
            answer = await self._answer(
                plan, decision=decision, scored=scored, now=now, elapsed=time.perf_counter() - started
            )
            shadow = decision.shadow
            if shadow is not None and shadow.mirrors(answer.request_id):
                self._mirror(shadow.target, decision.alias, [(request, answer.request_id)], now)
        metrics.SCORE_LATENCY.labels(plan.version.model_name, inference_pb2.Route.Name(answer.route)).observe(
            time.perf_counter() - started
        )
        return answer

    def _fallback_of(self, plan: _Plan, exc: AimeshError) -> training_pb2.Fallback:
        """The model's fallback for the outage ``exc`` (counted by cause); ``Unavailable`` naming the
        dependency when the model has none."""
        policy = self._catalog.traffic_policy(plan.version.model_name)
        fallback = policy.fallback if policy is not None else None
        if fallback is None:
            raise Unavailable(f"{plan.label} cannot be scored now: {exc.message} (the model has no fallback)") from exc
        metrics.FALLBACK.labels(plan.version.model_name, outage_cause(exc)).inc()
        return fallback

    def _fallback_plan(self, plan: _Plan, fallback: training_pb2.Fallback, exc: AimeshError) -> _Plan:
        """The plan of a previous-version ``fallback`` standing in for ``plan``; ``Unavailable`` when that
        version is not registered (yet) or is ``plan``'s own."""
        number = fallback.previous_version.version
        target = self._catalog.version(plan.version.model_name, number)
        if target is None or number == plan.version.version:
            why = "is not registered" if target is None else "is the version that failed"
            raise Unavailable(f"{plan.label} cannot be scored now: {exc.message} (its fallback v{number} {why})")
        return self._plan(target)

    async def _fall_back(
        self,
        plan: _Plan,
        alias: str,
        fields: RowFields,
        exc: AimeshError,
        *,
        now: datetime,
        started: float,
        deadline: Deadline,
    ) -> inference_pb2.ScoreResponse:
        """Answer one row ``plan`` could not score because of the outage ``exc`` with the model's fallback
        (route ``ROUTE_FALLBACK``): a constant or a rule's score, or the previous version's answer;
        ``Unavailable`` without a fallback, or when the previous version cannot be scored in time either."""
        fallback = self._fallback_of(plan, exc)
        if kind_of(fallback) != "previous_version":
            score = _fallback_score(fallback, fields)
            return await self._answer_constant(
                plan, alias, fields, score, now=now, elapsed=time.perf_counter() - started
            )
        previous = self._fallback_plan(plan, fallback, exc)
        try:
            scored = await self._run(previous, fields, now, deadline)
        except OUTAGE as again:
            raise _neither(plan, exc, previous, again) from again
        decision = RouteDecision(previous.version, inference_pb2.ROUTE_FALLBACK, alias)
        elapsed = time.perf_counter() - started
        return await self._answer(previous, decision=decision, scored=scored, now=now, elapsed=elapsed)

    async def _answer_constant(
        self, plan: _Plan, alias: str, fields: RowFields, score: float, *, now: datetime, elapsed: float
    ) -> inference_pb2.ScoreResponse:
        """Submit the ``ROUTE_FALLBACK`` Prediction of a row answered by the fallback ``score`` (a constant or
        a rule's; no features, no model call) and build its ``ScoreResponse``."""
        target = plan.version
        request_id = fields.request_id or str(uuid.uuid4())
        prediction = events_pb2.Prediction(
            request_id=request_id,
            event_id=str(uuid.uuid4()),
            model_name=target.model_name,
            model_version=target.version,
            score=score,
            latency=duration(elapsed),
            time=timestamp(now),
            route=inference_pb2.ROUTE_FALLBACK,
            alias=alias,
            entity_ids=dict(fields.entity_ids),
            tenant=current_tenant(),
        )
        delivery = await self._publisher.submit(
            prediction, key=prediction_key(target.signature, fields.entity_ids, request_id)
        )
        return inference_pb2.ScoreResponse(
            request_id=request_id,
            score=score,
            model_name=target.model_name,
            model_version=target.version,
            route=inference_pb2.ROUTE_FALLBACK,
            event_id=answered_event_id(prediction, delivery),
            outputs={"score": inference_pb2.OutputValues(values=[score])},
            prediction_delivery=delivery,
        )

    async def _run(self, plan: _Plan, fields: RowFields, now: datetime, deadline: Deadline) -> _Scored:
        """Check, look up, encode and infer one row, then check its outputs are finite (Score's steps)."""
        row = plan.prepare(fields)
        [online] = await self._lookup(plan, [row], now, deadline, self.feature_breaker)
        encoded = plan.encode(row, online)
        [tensors] = await self._infer(plan, [encoded.values], deadline, self.triton_breakers)
        outputs = plan.read_outputs(tensors)
        plan.check_finite(outputs)
        return _Scored(row, online, encoded, outputs)

    def _mirror(
        self, target: ModelVersion, alias: str, mirrored: Sequence[tuple[RowFields, str]], now: datetime
    ) -> None:
        """Start the shadow scoring of the ``mirrored`` rows (each with the request id it was answered
        under) by ``target``: one background task, one lookup and one model call (``ShadowTasks``)."""
        rows = [
            inference_pb2.ScoreBatchRow(
                request_id=request_id, entity_ids=fields.entity_ids, features=fields.features, context=fields.context
            )
            for fields, request_id in mirrored
        ]
        self.shadows.start(
            target,
            len(rows),
            functools.partial(self._shadow, target, alias, rows, now),
            request_id=rows[0].request_id,
        )

    def _mirror_batch(self, batch: _Batch, now: datetime) -> None:
        """Mirror the answered rows of ``batch`` its traffic policy's shadow takes (none when it fell back)."""
        shadow = batch.decision.shadow
        if shadow is None or batch.route == inference_pb2.ROUTE_FALLBACK:
            return
        mirrored = [
            (fields, result.response.request_id)
            for fields, result in zip(batch.rows, batch.results, strict=True)
            if result.HasField("response") and shadow.mirrors(result.response.request_id)
        ]
        if mirrored:
            self._mirror(shadow.target, batch.decision.alias, mirrored, now)

    async def _shadow(
        self, target: ModelVersion, alias: str, rows: Sequence[inference_pb2.ScoreBatchRow], now: datetime
    ) -> list[str]:
        """Score ``rows`` with the shadow version ``target`` (one lookup, one model call) and submit their
        Predictions (``ROUTE_SHADOW``, ``shadow`` true, the caller's request ids); the reason of each row
        refused."""
        batch = await self._score_rows(
            self._plan(target),
            RouteDecision(target, inference_pb2.ROUTE_SHADOW, alias),
            rows,
            now=now,
            started=time.perf_counter(),
            deadline=Deadline.after(self.shadows.calls_s),
        )
        return [result.message for result in await batch.emit() if not result.HasField("response")]

    @property
    def shadows_in_flight(self) -> int:
        """Shadow scorings running now."""
        return self.shadows.in_flight

    async def drain_shadows(self, within_s: float | None = None) -> int:
        """``ShadowTasks.drain`` of this scorer's shadows."""
        return await self.shadows.drain(within_s)

    async def score_batch(
        self, request: inference_pb2.ScoreBatchRequest, *, time_left: float | None, max_rows: int
    ) -> inference_pb2.ScoreBatchResponse:
        """Score ``request.rows`` within ``time_left`` seconds, each row routed as Score routes it alone
        (``route_rows``), with one feature lookup and one model call per routed version (at most two, the
        champion's and the canary's, run at once). A row the signature refuses or whose output is not finite
        gets its status in its result; routing and request errors fail the call (``InvalidArgument`` for no
        rows or more than ``max_rows``); an outage of the feature service or Triton gives every accepted row
        of that version the model's fallback (``ROUTE_FALLBACK``), or fails the call with ``Unavailable``
        without one (see the module doc). No Prediction is emitted before every version's rows are scored,
        so a failed call leaves none. The response names the version and route of the rows the canary did
        not take (of the canary's when it took every row); each row's own are in its response. Rows the
        traffic policy mirrors are scored again by the shadow version in one background batch."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        deadline = Deadline.reserving(time_left, self._reserve_s)
        rows = request.rows
        if not 0 < len(rows) <= max_rows:
            raise InvalidArgument(f"rows holds {len(rows)} rows; a batch holds 1 to {max_rows}")
        decisions = route_rows(
            self._catalog,
            request.model,
            request.alias if request.HasField("alias") else None,
            request.version if request.HasField("version") else None,
            default_alias=self._default_alias,
            rows=[(row.entity_ids, row.request_id) for row in rows],
        )
        groups: dict[int, list[int]] = {}
        for j, decision in enumerate(decisions):
            groups.setdefault(decision.target.version, []).append(j)
        if len(groups) == 1:
            answered = [await self._batch_of(decisions[0], rows, now=now, started=started, deadline=deadline)]
        else:
            outcomes = await asyncio.gather(
                *(
                    self._batch_of(decisions[at[0]], [rows[j] for j in at], now=now, started=started, deadline=deadline)
                    for at in groups.values()
                ),
                return_exceptions=True,
            )
            failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failed is not None:
                raise failed
            answered = [o for o in outcomes if isinstance(o, _Batch)]
        results: list[inference_pb2.ScoreBatchResult] = [inference_pb2.ScoreBatchResult() for _ in rows]
        for at, batch in zip(groups.values(), answered, strict=True):
            for j, result in zip(at, await batch.emit(), strict=True):
                results[j] = result
        for batch in answered:
            self._mirror_batch(batch, now)
        main = next((b for b in answered if b.decision.route != inference_pb2.ROUTE_CANARY), answered[0])
        metrics.SCORE_BATCH_ROWS.labels(main.plan.version.model_name).observe(len(rows))
        return inference_pb2.ScoreBatchResponse(
            model_name=main.plan.version.model_name,
            model_version=main.plan.version.version,
            route=main.route,
            results=results,
        )

    async def _batch_of(
        self, decision: RouteDecision, rows: Sequence[RowFields], *, now: datetime, started: float, deadline: Deadline
    ) -> _Batch:
        """The rows routed to ``decision``'s version, scored with one lookup and one model call, or answered
        by its fallback when either meets an outage (raises what ``_fall_back_rows`` raises)."""
        plan = self._plan(decision.target)
        try:
            return await self._score_rows(plan, decision, rows, now=now, started=started, deadline=deadline)
        except OUTAGE as exc:
            return await self._fall_back_rows(plan, decision, rows, exc, now=now, started=started, deadline=deadline)

    async def _score_rows(
        self,
        plan: _Plan,
        decision: RouteDecision,
        rows: Sequence[RowFields],
        *,
        now: datetime,
        started: float,
        deadline: Deadline,
    ) -> _Batch:
        """``rows`` scored by ``plan`` with one lookup and one model call, their answers not yet emitted (a
        refused row or a non-finite output: its status); raises the lookup's or the model call's outage."""
        batch = _Batch(plan, decision, decision.route, rows)
        accepted: list[tuple[int, _Row]] = []
        for j, fields in enumerate(rows):
            try:
                accepted.append((j, plan.prepare(fields)))
            except InvalidArgument as exc:
                batch.results[j] = _refused(exc)
        prepared = [row for _, row in accepted]
        feature_breaker, triton_breakers = self.shadows.breakers(
            decision.route, (self.feature_breaker, self.triton_breakers)
        )
        online = await self._lookup(plan, prepared, now, deadline, feature_breaker)
        encoded = [plan.encode(row, found) for row, found in zip(prepared, online, strict=True)]
        tensors = await self._infer(plan, [e.values for e in encoded], deadline, triton_breakers) if encoded else []
        elapsed = time.perf_counter() - started
        for (j, row), found, done, row_tensors in zip(accepted, online, encoded, tensors, strict=True):
            outputs = plan.read_outputs(row_tensors)
            try:
                plan.check_finite(outputs)
            except FailedPrecondition as exc:
                batch.results[j] = _refused(exc)
                continue
            scored = _Scored(row, found, done, outputs)
            batch.pending.append(
                (j, functools.partial(self._answer, plan, decision=decision, scored=scored, now=now, elapsed=elapsed))
            )
        return batch

    async def _fall_back_rows(
        self,
        plan: _Plan,
        decision: RouteDecision,
        rows: Sequence[RowFields],
        exc: AimeshError,
        *,
        now: datetime,
        started: float,
        deadline: Deadline,
    ) -> _Batch:
        """``rows`` answered by the fallback of ``plan``, whose batch met the outage ``exc``: every row
        ``plan`` accepts gets the constant's or the rule's score, or the rows are scored by the previous
        version (its own refusals); ``Unavailable`` as for ``_fall_back``."""
        fallback = self._fallback_of(plan, exc)
        alias = decision.alias
        if kind_of(fallback) == "previous_version":
            previous = self._fallback_plan(plan, fallback, exc)
            standing_in = RouteDecision(previous.version, inference_pb2.ROUTE_FALLBACK, alias)
            try:
                batch = await self._score_rows(previous, standing_in, rows, now=now, started=started, deadline=deadline)
            except OUTAGE as again:
                raise _neither(plan, exc, previous, again) from again
            batch.decision = decision
            return batch
        batch = _Batch(plan, decision, inference_pb2.ROUTE_FALLBACK, rows)
        elapsed = time.perf_counter() - started
        for j, fields in enumerate(rows):
            try:
                plan.prepare(fields)
            except InvalidArgument as refused:
                batch.results[j] = _refused(refused)
                continue
            score = _fallback_score(fallback, fields)
            batch.pending.append(
                (j, functools.partial(self._answer_constant, plan, alias, fields, score, now=now, elapsed=elapsed))
            )
        return batch

    async def _lookup(
        self, plan: _Plan, rows: Sequence[_Row], now: datetime, deadline: Deadline, breaker: CircuitBreaker
    ) -> list[OnlineFeatures]:
        """Online values per row, from one feature-service call through ``breaker`` for the rows that need
        any (an empty ``OnlineFeatures`` for a row whose inputs are all inline; no call when none needs one)."""
        asked = [row for row in rows if row.needed]
        if not asked:
            return [OnlineFeatures() for _ in rows]
        service = plan.version.feature_service or plan.version.model_name
        lookups = [FeatureLookup(service, row.fields.entity_ids, row.fields.context, as_of=now) for row in asked]
        left = deadline.left("the feature lookup")
        found = iter(await guarded(breaker, left, lambda: self._features.online_features(lookups, time_left=left)))
        return [next(found) if row.needed else OnlineFeatures() for row in rows]

    async def _infer(
        self, plan: _Plan, rows: Sequence[list[float]], deadline: Deadline, breakers: ModelBreakers
    ) -> list[dict[str, list[float]]]:
        """The model's output tensors per encoded row, from one call through its Triton model version's breaker."""
        target = plan.version
        left = deadline.left("the model call")
        return await guarded(
            breakers.for_model(target.triton_model_name, target.triton_model_version),
            left,
            lambda: self._runner.infer(
                target.triton_model_name,
                target.triton_model_version,
                rows,
                input_tensor=target.signature.input_tensor,
                outputs=[o.tensor for o in plan.outputs],
                time_left=left,
            ),
        )

    async def _answer(
        self, plan: _Plan, *, decision: RouteDecision, scored: _Scored, now: datetime, elapsed: float
    ) -> inference_pb2.ScoreResponse:
        """Emit the row's Prediction (submitted to the publisher) and build its ``ScoreResponse``."""
        target = plan.version
        fields = scored.row.fields
        request_id = fields.request_id or str(uuid.uuid4())
        prediction = _prediction(
            plan, scored, request_id=request_id, route=decision.route, alias=decision.alias, now=now, elapsed=elapsed
        )
        delivery = await self._publisher.submit(
            prediction, key=prediction_key(target.signature, fields.entity_ids, request_id)
        )
        return inference_pb2.ScoreResponse(
            request_id=request_id,
            score=prediction.score,
            model_name=target.model_name,
            model_version=target.version,
            route=decision.route,
            feature_freshness_seconds=prediction.feature_freshness_seconds,
            missing_features=scored.encoded.missing,
            event_id=answered_event_id(prediction, delivery),
            outputs={name: inference_pb2.OutputValues(values=v) for name, v in scored.outputs.items()},
            prediction_delivery=delivery,
        )


def _prediction(
    plan: _Plan,
    scored: _Scored,
    *,
    request_id: str,
    route: inference_pb2.Route,
    alias: str,
    now: datetime,
    elapsed: float,
) -> events_pb2.Prediction:
    """The Prediction event of a scored row (its own event id; ``shadow`` true for ``ROUTE_SHADOW``)."""
    target = plan.version
    first = scored.outputs[plan.outputs[0].name] if plan.outputs else []
    return events_pb2.Prediction(
        request_id=request_id,
        event_id=str(uuid.uuid4()),
        model_name=target.model_name,
        model_version=target.version,
        score=first[0] if len(first) == 1 else 0.0,
        features=single_columns(plan.encoder, scored.encoded.values),
        latency=duration(elapsed),
        time=timestamp(now),
        shadow=route == inference_pb2.ROUTE_SHADOW,
        route=route,
        alias=alias,
        entity_ids=dict(scored.row.fields.entity_ids),
        feature_freshness_seconds=scored.online.freshness(now, scored.row.needed),
        missing_features=scored.encoded.missing,
        tenant=current_tenant(),
    )


def _refused(exc: AimeshError) -> inference_pb2.ScoreBatchResult:
    """The result of a row that was not scored: its status code number and the error's message."""
    return inference_pb2.ScoreBatchResult(code=exc.code.value[0], message=exc.message)


def single_columns(encoder: InputEncoder, row: Sequence[float]) -> dict[str, float]:
    """Input name -> its encoded value, for the inputs that take one column of ``row`` (a sequence input's
    columns are left out: ``Prediction.features`` holds one number per input)."""
    return {
        name: row[span.start]
        for name, span in zip(encoder.names, encoder.spans, strict=True)
        if span.stop - span.start == 1
    }


def _fallback_score(fallback: training_pb2.Fallback, fields: RowFields) -> float:
    """The score a constant or rule ``fallback`` gives the row ``fields``."""
    if kind_of(fallback) == "rule":
        return rule_score(fallback.rule, fields.context, fields.features)
    return float(fallback.constant_score)


def _neither(plan: _Plan, exc: AimeshError, previous: _Plan, again: AimeshError) -> Unavailable:
    """The ``Unavailable`` of a call that neither ``plan`` (``exc``) nor its fallback ``previous`` (``again``)
    could answer in time."""
    return Unavailable(
        f"{plan.label} cannot be scored now: {exc.message}; nor can its fallback {previous.label}: {again.message}"
    )
