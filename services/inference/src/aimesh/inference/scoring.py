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

``feature_freshness_seconds`` is the request time minus the newest ``event_time`` among the online
values fed to the model (0 when none carries one, e.g. all inline). ``Scorer.score`` takes the caller's
remaining time; every downstream call gets what is left of it. Raises domain errors: ``InvalidArgument``
(no model, a request the signature refuses, an inline key matching no input, inputs needing the feature
service and no entity ids), ``NotFound``/``Unavailable`` from routing, the feature service's errors,
Triton's (``Unavailable``, ``DeadlineExceeded``, ``FailedPrecondition``), ``FailedPrecondition`` for an
output whose size disagrees with its signature shape, and ``DeadlineExceeded`` when the time ran out
between steps.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2, inference_pb2
from aimesh.core.auth import current_tenant
from aimesh.core.errors import FailedPrecondition, InvalidArgument
from aimesh.core.model_catalog import ModelCatalog, ModelVersion
from aimesh.core.signature import InputEncoder, Scalar, check_request
from aimesh.inference import metrics
from aimesh.inference.features import FeatureLookup, FeatureSource, OnlineFeatures
from aimesh.inference.predictions import PredictionPublisher, prediction_key
from aimesh.inference.routing import RouteDecision, resolve_request
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
    ) -> None:
        self._catalog = catalog
        self._features = features
        self._runner = runner
        self._publisher = publisher
        self._default_alias = default_alias
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
        """The signature of the version ``request`` resolves to, routed as ``score`` routes (pin, alias,
        default alias). Raises ``InvalidArgument`` without a model, ``NotFound`` naming what exists for an
        unknown model, version or alias, ``Unavailable`` while the routing table is empty."""
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
        deadline = Deadline.after(time_left)
        decision = self._resolve(
            request.model,
            request.alias if request.HasField("alias") else None,
            request.version if request.HasField("version") else None,
        )
        target = decision.target
        signature = target.signature
        plan = self._plan(target)
        check_request(signature, request.entity_ids, request.context)
        inline = plan.inline(request.features)
        needed = [name for j, name in enumerate(plan.names) if j not in inline]
        online = await self._lookup(request, needed, target.feature_service or target.model_name, now, deadline)
        values: list[Scalar] = [
            inline[j] if j in inline else online.values.get(name) for j, name in enumerate(plan.names)
        ]
        row = plan.encoder.row(values)
        missing = [name for j, name in enumerate(plan.names) if plan.encoder.is_missing(j, values[j])]
        freshness = online.freshness(now, needed)
        tensors = await self._runner.infer(
            target.triton_model_name,
            target.triton_model_version,
            row,
            input_tensor=signature.input_tensor,
            outputs=[o.tensor for o in plan.outputs],
            time_left=deadline.left("the model call"),
        )
        outputs = plan.read_outputs(tensors)
        first = outputs[plan.outputs[0].name] if plan.outputs else []
        score = first[0] if len(first) == 1 else 0.0
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
            features=single_columns(plan.encoder, row),
            latency=duration(elapsed),
            time=timestamp(now),
            route=decision.route,
            alias=decision.alias,
            entity_ids=dict(request.entity_ids),
            feature_freshness_seconds=freshness,
            missing_features=missing,
            tenant=current_tenant(),
        )
        await self._publisher.submit(prediction, key=prediction_key(signature, request.entity_ids, request_id))
        return inference_pb2.ScoreResponse(
            request_id=request_id,
            score=score,
            model_name=target.model_name,
            model_version=target.version,
            route=decision.route,
            feature_freshness_seconds=freshness,
            missing_features=missing,
            event_id=event_id,
            outputs={name: inference_pb2.OutputValues(values=v) for name, v in outputs.items()},
        )

    async def _lookup(
        self,
        request: inference_pb2.ScoreRequest,
        needed: Sequence[str],
        feature_service: str,
        now: datetime,
        deadline: Deadline,
    ) -> OnlineFeatures:
        """Online values for the inputs the caller did not supply (none asked when all are inline)."""
        if not needed:
            return OnlineFeatures()
        if not request.entity_ids:
            raise InvalidArgument(f"entity_ids is empty and these inputs have no inline value: {', '.join(needed)}")
        lookup = FeatureLookup(feature_service, request.entity_ids, request.context, as_of=now)
        return await self._features.online_features(lookup, time_left=deadline.left("the feature lookup"))


def single_columns(encoder: InputEncoder, row: Sequence[float]) -> dict[str, float]:
    """Input name -> its encoded value, for the inputs that take one column of ``row`` (a sequence input's
    columns are left out: ``Prediction.features`` holds one number per input)."""
    return {
        name: row[span.start]
        for name, span in zip(encoder.names, encoder.spans, strict=True)
        if span.stop - span.start == 1
    }
