"""Score's constant fallback with the fakes: a feature service or Triton that is down, failing or too slow
for the caller's deadline gives the constant with ROUTE_FALLBACK (and a ROUTE_FALLBACK Prediction) well
within the deadline; without a fallback UNAVAILABLE naming the dependency; request errors are never
replaced; an open breaker skips the dependency; ScoreBatch falls back as a whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable
from aimesh.core.model_catalog import ModelCatalog
from aimesh.core.testing import RecordingSender
from aimesh.inference.breaker import BreakerState, CircuitBreaker, ModelBreakers
from aimesh.inference.features import FeatureLookup, OnlineFeatures
from aimesh.inference.predictions import PredictionPublisher
from aimesh.inference.scoring import Scorer

from .test_score_batch import batch_row
from .test_scoring import FakeFeatures, FakeRunner, alias, registered, signature, valid_request

CONSTANT = 0.25


class FailingFeatures(FakeFeatures):
    """Raises ``error`` on every lookup (after counting it)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(OnlineFeatures())
        self.error = error

    async def online_features(
        self, lookups: Sequence[FeatureLookup], *, time_left: float | None
    ) -> list[OnlineFeatures]:
        self.requests += 1
        raise self.error


class BadRunner(FakeRunner):
    """Raises ``error`` (when set), or sleeps ``sleep`` seconds ignoring ``time_left``, before answering."""

    def __init__(self, error: Exception | None = None, sleep: float = 0.0) -> None:
        super().__init__()
        self.error = error
        self.sleep = sleep

    async def infer(self, model: str, version: int, rows: Sequence[Sequence[float]], **kw: Any) -> Any:
        self.calls.append({"model": model})
        if self.error is not None:
            raise self.error
        await asyncio.sleep(self.sleep)
        return [self.tensors(list(row)) for row in rows]


def with_fallback(constant: float | None) -> ModelCatalog:
    c = ModelCatalog()
    for event in (registered(3, signature()), alias(3)):
        c.apply(event)
    policy = training_pb2.TrafficPolicy(model_name="risk", revision=1)
    if constant is not None:
        policy.fallback.constant_score = constant
    c.apply(
        events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED, model_name="risk", traffic_policy=policy
        )
    )
    return c


class Sent:
    """The producer and the publisher of a scorer: ``await sent()`` drains and lists what was sent."""

    def __init__(self) -> None:
        self.producer = RecordingSender()
        self.publisher = PredictionPublisher(self.producer, "p")

    async def __call__(self) -> list[Any]:
        await self.publisher.drain()
        return list(self.producer.sent)


def scorer(
    c: ModelCatalog, features: FakeFeatures | None = None, runner: FakeRunner | None = None, **kw: Any
) -> tuple[Scorer, Sent]:
    sent = Sent()
    features = features or FakeFeatures(OnlineFeatures())
    return Scorer(c, features, runner or FakeRunner(), sent.publisher, **kw), sent


OUTAGES = [
    pytest.param(FailingFeatures(Unavailable("feature service: connection refused")), None, id="features-down"),
    pytest.param(None, BadRunner(Unavailable("Triton model 'risk_tr': connection refused")), id="triton-down"),
    pytest.param(None, BadRunner(DeadlineExceeded("Triton model 'risk_tr': Deadline Exceeded")), id="triton-deadline"),
    pytest.param(None, BadRunner(sleep=5.0), id="triton-sleeps-past-the-deadline"),
]


@pytest.mark.parametrize(("features", "runner"), OUTAGES)
async def test_an_outage_answers_the_constant_with_route_fallback_within_the_deadline(
    features: FakeFeatures | None, runner: FakeRunner | None
) -> None:
    s, producer = scorer(with_fallback(CONSTANT), features, runner)
    started = time.perf_counter()
    answer = await s.score(valid_request(request_id="r-1"), time_left=0.3)
    took = time.perf_counter() - started
    assert took < 0.3 - 0.01, f"answered in {took:.3f} s, the deadline was 0.3 s"
    assert answer.route == inference_pb2.ROUTE_FALLBACK and answer.score == CONSTANT
    assert list(answer.outputs["score"].values) == [CONSTANT]
    assert (answer.model_name, answer.model_version, answer.request_id) == ("risk", 3, "r-1")
    [(_, prediction, key, _)] = await producer()
    assert isinstance(prediction, inference_events.Prediction)
    assert prediction.route == inference_pb2.ROUTE_FALLBACK and prediction.score == CONSTANT
    assert prediction.event_id == answer.event_id and prediction.request_id == "r-1" and key == "a-1"


@pytest.mark.parametrize(("features", "runner"), OUTAGES)
async def test_without_a_fallback_an_outage_is_unavailable_naming_the_dependency_within_the_deadline(
    features: FakeFeatures | None, runner: FakeRunner | None
) -> None:
    s, producer = scorer(with_fallback(None), features, runner)
    started = time.perf_counter()
    with pytest.raises(Unavailable, match=r"feature service|Triton") as raised:
        await s.score(valid_request(), time_left=0.3)
    assert time.perf_counter() - started < 0.29
    assert "no fallback" in raised.value.message and not await producer()


@pytest.mark.parametrize(
    ("features", "error"),
    [
        (FakeFeatures(OnlineFeatures()), InvalidArgument),
        (FailingFeatures(NotFound("feature service: no feature service 'x'")), NotFound),
        (FailingFeatures(InvalidArgument("feature service: entity id missing")), InvalidArgument),
    ],
)
async def test_request_errors_are_never_replaced_by_the_fallback(features: FakeFeatures, error: type) -> None:
    s, producer = scorer(with_fallback(CONSTANT), features)
    request = valid_request()
    if error is InvalidArgument and not isinstance(features, FailingFeatures):
        del request.context["amount"]
    with pytest.raises(error):
        await s.score(request, time_left=1.0)
    assert not await producer()


async def test_an_open_breaker_skips_the_dependency_until_a_probe_succeeds() -> None:
    features = FailingFeatures(Unavailable("feature service: connection refused"))
    breaker = CircuitBreaker("the feature service", failures=3, cooldown_s=0.2)
    s, _ = scorer(with_fallback(CONSTANT), features, feature_breaker=breaker)
    answers = [await s.score(valid_request(), time_left=1.0) for _ in range(10)]
    assert {a.route for a in answers} == {inference_pb2.ROUTE_FALLBACK}
    assert features.requests == 3, "calls after the third failure go straight to the fallback"
    assert breaker.state is BreakerState.OPEN
    await asyncio.sleep(0.25)
    ok = FakeFeatures(OnlineFeatures({"v:a": 1.0}))
    s._features = ok
    answer = await s.score(valid_request(), time_left=1.0)
    assert answer.route == inference_pb2.ROUTE_CHAMPION and breaker.state is BreakerState.CLOSED


async def test_open_breaker_without_a_fallback_is_unavailable_circuit_open() -> None:
    runner = BadRunner(Unavailable("Triton model 'risk_tr': connection refused"))
    s, _ = scorer(with_fallback(None), runner=runner, triton_breakers=ModelBreakers("Triton", failures=2))
    for _ in range(2):
        with pytest.raises(Unavailable, match="connection refused"):
            await s.score(valid_request(), time_left=1.0)
    with pytest.raises(Unavailable, match=r"circuit open: Triton model 'risk_tr' version \d+ failed 2 times in a row"):
        await s.score(valid_request(), time_left=1.0)
    assert len(runner.calls) == 2


async def test_score_batch_falls_back_as_a_whole_and_keeps_refused_rows() -> None:
    runner = BadRunner(Unavailable("Triton model 'risk_tr': connection refused"))
    s, producer = scorer(with_fallback(CONSTANT), runner=runner)
    refused = inference_pb2.ScoreBatchRow(entity_ids={"account": "a-9", "user": "u-1"})
    rows = [batch_row("a-1"), refused, batch_row("a-2")]
    response = await s.score_batch(inference_pb2.ScoreBatchRequest(model="risk", rows=rows), time_left=1.0, max_rows=10)
    assert response.route == inference_pb2.ROUTE_FALLBACK
    assert [r.code for r in response.results] == [0, InvalidArgument.code.value[0], 0]
    assert [r.response.score for r in response.results if r.code == 0] == [CONSTANT, CONSTANT]
    assert [sent[1].route for sent in await producer()] == [inference_pb2.ROUTE_FALLBACK] * 2


async def test_score_batch_without_a_fallback_is_unavailable() -> None:
    s, _ = scorer(with_fallback(None), FailingFeatures(Unavailable("feature service: connection refused")))
    with pytest.raises(Unavailable, match="no fallback"):
        await s.score_batch(
            inference_pb2.ScoreBatchRequest(model="risk", rows=[batch_row("a-1")]), time_left=1.0, max_rows=10
        )


def with_policy_fallback(fallback: training_pb2.Fallback) -> ModelCatalog:
    """v3 champion (Triton version 1) and v2 (Triton version 2), the policy's fallback ``fallback``."""
    c = ModelCatalog()
    previous = registered(2, signature())
    previous.triton_model_version = 2
    for event in (previous, registered(3, signature()), alias(3)):
        c.apply(event)
    policy = training_pb2.TrafficPolicy(model_name="risk", revision=1, fallback=fallback)
    c.apply(
        events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED, model_name="risk", traffic_policy=policy
        )
    )
    return c


RULE = training_pb2.FallbackRule(
    conditions=[
        training_pb2.FallbackCondition(
            field="context.amount", op=training_pb2.FallbackCondition.OP_GT, number=100.0, score=0.9
        ),
        training_pb2.FallbackCondition(
            field="context.channel", op=training_pb2.FallbackCondition.OP_EQ, text="web", score=0.6
        ),
    ],
    default_score=0.1,
)


class FailingVersion(FakeRunner):
    """Fails every call of Triton model version ``failing`` with ``Unavailable``; answers the others."""

    def __init__(self, failing: int) -> None:
        super().__init__()
        self.failing = failing

    async def infer(self, model: str, version: int, rows: Sequence[Sequence[float]], **kw: Any) -> Any:
        if version == self.failing:
            self.calls.append({"model": model, "version": version})
            raise Unavailable(f"Triton model {model!r} v{version}: failed")
        return await super().infer(model, version, rows, **kw)


@pytest.mark.parametrize(("features", "runner"), OUTAGES)
async def test_a_rule_fallback_scores_the_request_fields_within_the_deadline(
    features: FakeFeatures | None, runner: FakeRunner | None
) -> None:
    s, producer = scorer(with_policy_fallback(training_pb2.Fallback(rule=RULE)), features, runner)
    big = valid_request(request_id="r-big")
    big.context["amount"].double_value = 500.0
    started = time.perf_counter()
    answers = [await s.score(r, time_left=0.3) for r in (big, valid_request(request_id="r-web"))]
    assert time.perf_counter() - started < 2 * 0.3
    assert [(a.route, a.score) for a in answers] == [
        (inference_pb2.ROUTE_FALLBACK, 0.9),
        (inference_pb2.ROUTE_FALLBACK, 0.6),
    ]
    other = valid_request(request_id="r-app")
    other.context["channel"].string_value = "app"
    assert (await s.score(other, time_left=0.3)).score == 0.1, "no condition holds: the default score"
    assert [sent[1].score for sent in await producer()] == [0.9, 0.6, 0.1]


async def test_a_previous_version_fallback_answers_with_that_version_when_the_routed_one_fails() -> None:
    fallback = training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=2))
    runner = FailingVersion(failing=1)
    s, producer = scorer(with_policy_fallback(fallback), runner=runner)
    answer = await s.score(valid_request(request_id="r-1"), time_left=1.0)
    assert (answer.route, answer.model_version) == (inference_pb2.ROUTE_FALLBACK, 2)
    assert [c["version"] for c in runner.calls] == [1, 2], "the champion's model, then the previous version's"
    [(_, prediction, _, _)] = await producer()
    assert (prediction.route, prediction.model_version, prediction.event_id) == (
        inference_pb2.ROUTE_FALLBACK,
        2,
        answer.event_id,
    )
    assert prediction.features, "a previous version's Prediction carries the features it scored"

    batch = await s.score_batch(
        inference_pb2.ScoreBatchRequest(model="risk", rows=[batch_row("a-1"), batch_row("a-2")]),
        time_left=1.0,
        max_rows=10,
    )
    assert (batch.route, batch.model_version) == (inference_pb2.ROUTE_FALLBACK, 2)
    assert [r.code for r in batch.results] == [0, 0]


async def test_a_previous_version_that_fails_too_is_unavailable_naming_both() -> None:
    fallback = training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=2))
    s, producer = scorer(with_policy_fallback(fallback), runner=BadRunner(Unavailable("Triton: connection refused")))
    with pytest.raises(Unavailable, match=r"v3 cannot be scored now: .*nor can its fallback model 'risk' v2"):
        await s.score(valid_request(), time_left=1.0)
    assert not await producer()
    unknown = training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=7))
    s, _ = scorer(with_policy_fallback(unknown), runner=FailingVersion(failing=1))
    with pytest.raises(Unavailable, match=r"its fallback v7 is not registered"):
        await s.score(valid_request(), time_left=1.0)


async def test_waiting_for_delivery_answers_acknowledged_or_failed_without_an_event_id() -> None:
    producer = RecordingSender()
    publisher = PredictionPublisher(producer, "p", wait_for_delivery=True)
    s = Scorer(with_fallback(None), FakeFeatures(OnlineFeatures()), FakeRunner(), publisher)
    answer = await s.score(valid_request(), time_left=1.0)
    assert answer.prediction_delivery == inference_pb2.PREDICTION_DELIVERY_ACKNOWLEDGED and answer.event_id
    producer.fail = True
    lost = await s.score(valid_request(), time_left=1.0)
    assert lost.prediction_delivery == inference_pb2.PREDICTION_DELIVERY_FAILED and lost.event_id == ""
    background, _ = scorer(with_fallback(None))
    pending = await background.score(valid_request(), time_left=1.0)
    assert pending.prediction_delivery == inference_pb2.PREDICTION_DELIVERY_PENDING and pending.event_id
