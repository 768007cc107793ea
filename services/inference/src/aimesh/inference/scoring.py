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
share of answered requests is mirrored to the shadow version. A mirrored request is scored again, after
the caller's answer is built, in a background task with the same steps (its own feature lookup, within
``shadow_timeout_s``); its Prediction has ``route`` ``ROUTE_SHADOW``, ``shadow`` true, the caller's
request id and its own event id, and is never returned. At most ``max_shadow_in_flight`` shadow scorings
run at once (beyond that a mirrored request is skipped); every outcome is counted in
``aimesh_inference_shadow_total{model,outcome}`` (``scored``, ``failed``, ``skipped``, ``cancelled``) and a
failure is logged at WARNING without a stack trace: a shadow never delays nor fails the caller.
``drain_shadows`` waits for them on shutdown and cancels the rest. ``score_batch`` routes the whole batch
to one version (pin, alias or the default alias's; no canary, no shadow): traffic policies apply per
request, in Score and Recommend.

Outages (``breaker.CircuitBreaker``, one for the feature service and one for Triton): the feature
lookup and the model call get the caller's remaining time minus ``fallback_reserve_s`` and are
abandoned when they take longer. When either fails with ``Unavailable`` or ``DeadlineExceeded`` (down,
failing, too slow, no time left for it, or its circuit open) and the model's traffic policy has a
constant fallback (``TrafficPolicy.fallback_score``), Score answers ``score`` = the constant,
``outputs["score"]`` = [the constant], ``route`` ``ROUTE_FALLBACK`` and the routed version's name and
number, and submits its Prediction (``ROUTE_FALLBACK``, its own event id, no features), for any route
(alias, pin, canary); no shadow is mirrored. Without a fallback it raises ``Unavailable`` naming the
dependency. The reserve keeps either answer ahead of the caller's deadline. A request the signature or
the feature service refuses (``InvalidArgument``, ``NotFound``) or a model answer that does not fit
(``FailedPrecondition``) is never replaced by the fallback. ScoreBatch falls back the same way, every
accepted row at once, when its one lookup or its one model call fails.

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
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.inference.v1 import events_pb2, inference_pb2
from aimesh.core.auth import current_tenant
from aimesh.core.errors import AimeshError, DeadlineExceeded, FailedPrecondition, InvalidArgument, Unavailable
from aimesh.core.model_catalog import ModelCatalog, ModelVersion
from aimesh.core.signature import InputEncoder, Scalar, check_request
from aimesh.core.validation import check_length
from aimesh.inference import metrics
from aimesh.inference.breaker import CircuitBreaker
from aimesh.inference.features import FeatureLookup, FeatureSource, OnlineFeatures
from aimesh.inference.predictions import PredictionPublisher, prediction_key
from aimesh.inference.routing import RouteDecision, resolve_request, route_request
from aimesh.inference.timing import Deadline, duration, timestamp
from aimesh.inference.triton import ModelRunner

log = logging.getLogger(__name__)

T = TypeVar("T")

_OUTAGE = (Unavailable, DeadlineExceeded)
"""The errors of a dependency that is down or too slow: the ones a fallback answers for."""


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
        ``InvalidArgument`` naming every refused field (see ``check_request`` and ``inline``), an entity id
        longer than ``MAX_NAME_BYTES``, or when inputs need the feature service and the row has no entity
        ids."""
        for entity_type, entity_id in fields.entity_ids.items():
            check_length(f"entity_ids[{entity_type[:64]!r}]", entity_id)
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
        max_shadow_in_flight: int = 64,
        shadow_timeout_s: float = 2.0,
        fallback_reserve_s: float = 0.02,
        feature_breaker: CircuitBreaker | None = None,
        triton_breaker: CircuitBreaker | None = None,
    ) -> None:
        self._catalog = catalog
        self._features = features
        self._runner = runner
        self._publisher = publisher
        self._default_alias = default_alias
        self._max_shadow_in_flight = max_shadow_in_flight
        self._shadow_timeout_s = shadow_timeout_s
        self._reserve_s = fallback_reserve_s
        self.feature_breaker = feature_breaker or CircuitBreaker("the feature service")
        self.triton_breaker = triton_breaker or CircuitBreaker("Triton")
        self._plans: dict[tuple[str, int], _Plan] = {}
        self._shadows: set[asyncio.Task[None]] = set()

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
        deadline = self._deadline(time_left)
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
        except _OUTAGE as exc:
            constant = self._fallback_of(plan, exc)
            answer = await self._fall_back(
                plan, decision.alias, request, constant, now=now, elapsed=time.perf_counter() - started
            )
        else:
            answer = await self._answer(
                plan, decision=decision, scored=scored, now=now, elapsed=time.perf_counter() - started
            )
            shadow = decision.shadow
            if shadow is not None and shadow.mirrors(answer.request_id):
                self._mirror(shadow.target, decision.alias, request, answer.request_id, now)
        metrics.SCORE_LATENCY.labels(plan.version.model_name, inference_pb2.Route.Name(answer.route)).observe(
            time.perf_counter() - started
        )
        return answer

    def _deadline(self, time_left: float | None) -> Deadline:
        """The deadline of the downstream calls: ``time_left`` less the fallback reserve."""
        return Deadline.after(None if time_left is None else max(time_left - self._reserve_s, 0.0))

    def _fallback_of(self, plan: _Plan, exc: AimeshError) -> float:
        """The model's constant fallback score for the outage ``exc`` (counted); ``Unavailable`` naming
        the dependency when the model has none."""
        policy = self._catalog.traffic_policy(plan.version.model_name)
        constant = policy.fallback_score if policy is not None else None
        if constant is None:
            raise Unavailable(f"{plan.label} cannot be scored now: {exc.message} (the model has no fallback)") from exc
        cause = "deadline" if isinstance(exc, DeadlineExceeded) else "unavailable"
        metrics.FALLBACK.labels(plan.version.model_name, cause).inc()
        return constant

    async def _fall_back(
        self, plan: _Plan, alias: str, fields: RowFields, constant: float, *, now: datetime, elapsed: float
    ) -> inference_pb2.ScoreResponse:
        """Submit the ``ROUTE_FALLBACK`` Prediction of a row answered by the constant ``constant`` and build
        its ``ScoreResponse``."""
        target = plan.version
        request_id = fields.request_id or str(uuid.uuid4())
        prediction = events_pb2.Prediction(
            request_id=request_id,
            event_id=str(uuid.uuid4()),
            model_name=target.model_name,
            model_version=target.version,
            score=constant,
            latency=duration(elapsed),
            time=timestamp(now),
            route=inference_pb2.ROUTE_FALLBACK,
            alias=alias,
            entity_ids=dict(fields.entity_ids),
            tenant=current_tenant(),
        )
        await self._publisher.submit(prediction, key=prediction_key(target.signature, fields.entity_ids, request_id))
        return inference_pb2.ScoreResponse(
            request_id=request_id,
            score=constant,
            model_name=target.model_name,
            model_version=target.version,
            route=inference_pb2.ROUTE_FALLBACK,
            event_id=prediction.event_id,
            outputs={"score": inference_pb2.OutputValues(values=[constant])},
        )

    async def _run(self, plan: _Plan, fields: RowFields, now: datetime, deadline: Deadline) -> _Scored:
        """Check, look up, encode and infer one row, then check its outputs are finite (Score's steps)."""
        row = plan.prepare(fields)
        [online] = await self._lookup(plan, [row], now, deadline)
        encoded = plan.encode(row, online)
        [tensors] = await self._infer(plan, [encoded.values], deadline)
        outputs = plan.read_outputs(tensors)
        plan.check_finite(outputs)
        return _Scored(row, online, encoded, outputs)

    def _mirror(
        self, target: ModelVersion, alias: str, request: inference_pb2.ScoreRequest, request_id: str, now: datetime
    ) -> None:
        """Start the shadow scoring of ``request`` by ``target`` in the background, or count it skipped when
        ``max_shadow_in_flight`` already run."""
        if len(self._shadows) >= self._max_shadow_in_flight:
            metrics.SHADOW.labels(target.model_name, "skipped").inc()
            return
        task = asyncio.create_task(self._shadow(target, alias, request, request_id, now), name=f"shadow:{request_id}")
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(
        self, target: ModelVersion, alias: str, request: inference_pb2.ScoreRequest, request_id: str, now: datetime
    ) -> None:
        """Score ``request`` with the shadow version ``target`` within ``shadow_timeout_s`` and submit its
        Prediction (``ROUTE_SHADOW``, ``shadow`` true, the caller's request id); never raises: a failure is
        counted and logged (one WARNING line, no stack trace)."""
        started = time.perf_counter()
        model = target.model_name
        try:
            plan = self._plan(target)
            async with asyncio.timeout(self._shadow_timeout_s):
                scored = await self._run(plan, request, now, Deadline.after(self._shadow_timeout_s))
            prediction = _prediction(
                plan,
                scored,
                request_id=request_id,
                route=inference_pb2.ROUTE_SHADOW,
                alias=alias,
                now=now,
                elapsed=time.perf_counter() - started,
            )
            await self._publisher.submit(
                prediction, key=prediction_key(target.signature, request.entity_ids, request_id)
            )
        except asyncio.CancelledError:
            metrics.SHADOW.labels(model, "cancelled").inc()
            raise
        except Exception as exc:
            metrics.SHADOW.labels(model, "failed").inc()
            reason = f"took longer than {self._shadow_timeout_s:g} s" if isinstance(exc, TimeoutError) else repr(exc)
            log.warning(
                "shadow scoring by model %r v%d failed: %s",
                model,
                target.version,
                reason,
                extra={"request.id": request_id},
            )
            return
        metrics.SHADOW.labels(model, "scored").inc()

    @property
    def shadows_in_flight(self) -> int:
        """Shadow scorings running now."""
        return len(self._shadows)

    async def drain_shadows(self, within_s: float | None = None) -> int:
        """Wait up to ``within_s`` seconds for running shadow scorings (their Predictions are then
        submitted), cancel the rest (counted ``cancelled``); returns how many were cancelled."""
        if self._shadows:
            await asyncio.wait(set(self._shadows), timeout=within_s)
        left = list(self._shadows)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
        return len(left)

    async def score_batch(
        self, request: inference_pb2.ScoreBatchRequest, *, time_left: float | None, max_rows: int
    ) -> inference_pb2.ScoreBatchResponse:
        """Score ``request.rows`` with one routed version, one feature lookup and one model call within
        ``time_left`` seconds. A row the signature refuses or whose output is not finite gets its status in
        its result; routing and request errors fail the call (``InvalidArgument`` for no rows or more than
        ``max_rows``); an outage of the feature service or Triton gives every accepted row the model's
        fallback (the response's route ``ROUTE_FALLBACK``), or fails the call with ``Unavailable`` without
        one (see the module doc)."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        deadline = self._deadline(time_left)
        if not 0 < len(request.rows) <= max_rows:
            raise InvalidArgument(f"rows holds {len(request.rows)} rows; a batch holds 1 to {max_rows}")
        decision = self._resolve(
            request.model,
            request.alias if request.HasField("alias") else None,
            request.version if request.HasField("version") else None,
        )
        plan = self._plan(decision.target)
        results: list[inference_pb2.ScoreBatchResult] = [inference_pb2.ScoreBatchResult() for _ in request.rows]
        accepted: list[tuple[int, _Row]] = []
        for j, fields in enumerate(request.rows):
            try:
                accepted.append((j, plan.prepare(fields)))
            except InvalidArgument as exc:
                results[j] = _refused(exc)
        rows = [row for _, row in accepted]
        route = decision.route
        try:
            online = await self._lookup(plan, rows, now, deadline)
            encoded = [plan.encode(row, found) for row, found in zip(rows, online, strict=True)]
            tensors = await self._infer(plan, [e.values for e in encoded], deadline) if encoded else []
        except _OUTAGE as exc:
            constant = self._fallback_of(plan, exc)
            route = inference_pb2.ROUTE_FALLBACK
            elapsed = time.perf_counter() - started
            for j, row in accepted:
                response = await self._fall_back(plan, decision.alias, row.fields, constant, now=now, elapsed=elapsed)
                results[j] = inference_pb2.ScoreBatchResult(code=0, response=response)
        else:
            elapsed = time.perf_counter() - started
            for (j, row), found, done, row_tensors in zip(accepted, online, encoded, tensors, strict=True):
                outputs = plan.read_outputs(row_tensors)
                try:
                    plan.check_finite(outputs)
                except FailedPrecondition as exc:
                    results[j] = _refused(exc)
                    continue
                response = await self._answer(
                    plan, decision=decision, scored=_Scored(row, found, done, outputs), now=now, elapsed=elapsed
                )
                results[j] = inference_pb2.ScoreBatchResult(code=0, response=response)
        metrics.SCORE_BATCH_ROWS.labels(plan.version.model_name).observe(len(request.rows))
        return inference_pb2.ScoreBatchResponse(
            model_name=plan.version.model_name, model_version=plan.version.version, route=route, results=results
        )

    async def _lookup(
        self, plan: _Plan, rows: Sequence[_Row], now: datetime, deadline: Deadline
    ) -> list[OnlineFeatures]:
        """Online values per row, from one feature-service call for the rows that need any (an empty
        ``OnlineFeatures`` for a row whose inputs are all inline; no call when none needs one)."""
        asked = [row for row in rows if row.needed]
        if not asked:
            return [OnlineFeatures() for _ in rows]
        service = plan.version.feature_service or plan.version.model_name
        lookups = [FeatureLookup(service, row.fields.entity_ids, row.fields.context, as_of=now) for row in asked]
        left = deadline.left("the feature lookup")
        found = iter(
            await _guarded(self.feature_breaker, left, lambda: self._features.online_features(lookups, time_left=left))
        )
        return [next(found) if row.needed else OnlineFeatures() for row in rows]

    async def _infer(
        self, plan: _Plan, rows: Sequence[list[float]], deadline: Deadline
    ) -> list[dict[str, list[float]]]:
        """The model's output tensors per encoded row, from one call."""
        target = plan.version
        left = deadline.left("the model call")
        return await _guarded(
            self.triton_breaker,
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
        await self._publisher.submit(prediction, key=prediction_key(target.signature, fields.entity_ids, request_id))
        return inference_pb2.ScoreResponse(
            request_id=request_id,
            score=prediction.score,
            model_name=target.model_name,
            model_version=target.version,
            route=decision.route,
            feature_freshness_seconds=prediction.feature_freshness_seconds,
            missing_features=scored.encoded.missing,
            event_id=prediction.event_id,
            outputs={name: inference_pb2.OutputValues(values=v) for name, v in scored.outputs.items()},
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


async def _guarded(breaker: CircuitBreaker, time_left: float | None, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` through ``breaker``, abandoned after ``time_left`` seconds (None: never) with
    ``DeadlineExceeded`` naming the dependency (a failure to the breaker)."""

    async def bounded() -> T:
        if time_left is None:
            return await call()
        try:
            async with asyncio.timeout(time_left):
                return await call()
        except TimeoutError:
            raise DeadlineExceeded(f"{breaker.dependency} did not answer within {time_left:.3f} s") from None

    return await breaker.call(bounded)


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
