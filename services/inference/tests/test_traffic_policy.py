"""Routing by the model's traffic policy with the in-memory fakes of ``test_scoring``: a sticky canary share of key
entities (the same in a second Scorer), weights 0 and 1, explicit alias or version bypassing it, a canary
version not registered yet; shadow mirroring in Score (same response, a ROUTE_SHADOW Prediction, a failing, slow
or saturated shadow never failing nor delaying the caller, counted), Recommend's canary and shadow, ScoreBatch
routing each row as Score would (one model call per version, its shadow in one background call, fallbacks per
version, nothing emitted by a failed call), and the routed versions the reconciler keeps loaded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import Unavailable
from aimesh.core.model_catalog import ModelCatalog
from aimesh.core.testing import RecordingSender
from aimesh.inference.breaker import BreakerState, ModelBreakers
from aimesh.inference.features import OnlineFeatures
from aimesh.inference.next_item import NextItemRanker
from aimesh.inference.predictions import PredictionPublisher
from aimesh.inference.routing import RouteDecision, bucket, route_request, routed_versions
from aimesh.inference.scoring import Scorer
from aimesh.inference.shadows import ShadowTasks

from . import test_next_item
from .test_scoring import FakeFeatures, FakeRunner, alias, catalog, registered, signature, valid_request

ENTITIES = 5_000


def version(number: int) -> events_pb2.ModelEvent:
    """Version ``number`` of ``risk`` with the test signature (key entity account), Triton model ``risk_v<n>``."""
    event = registered(number, signature())
    event.triton_model_name = f"risk_v{number}"
    return event


def policy(
    canary: int = 0, weight: float = 0.0, shadow: int = 0, share: float = 0.0, revision: int = 1, model: str = "risk"
) -> events_pb2.ModelEvent:
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED,
        model_name=model,
        traffic_policy=training_pb2.TrafficPolicy(
            model_name=model,
            canary_version=canary,
            canary_weight=weight,
            shadow_version=shadow,
            shadow_share=share,
            revision=revision,
        ),
    )


def policy_catalog(*policies: events_pb2.ModelEvent) -> ModelCatalog:
    """``risk`` v1 (champion) and v2, then ``policies``."""
    return catalog(version(1), version(2), alias(1), *policies)


class ModelRunner(FakeRunner):
    """``FakeRunner`` whose Triton model ``risk_v<n>`` answers ``n`` + sum(row) / 100, after ``delays[model]``
    seconds or raising ``errors[model]``."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: dict[str, float] = {}
        self.errors: dict[str, Exception] = {}

    async def infer(
        self,
        model: str,
        version: int,
        rows: Sequence[Sequence[float]],
        *,
        input_tensor: str,
        outputs: Sequence[str],
        time_left: float | None,
    ) -> list[dict[str, list[float]]]:
        await asyncio.sleep(self.delays.get(model, 0.0))
        if model in self.errors:
            raise self.errors[model]
        self.calls.append({"model": model, "version": version})
        offset = float(model.removeprefix("risk_v"))
        return [{"OUTPUT__0": [offset + sum(row) / 100.0]} for row in rows]


def scorer(
    c: ModelCatalog, *, max_shadow_in_flight: int = 64, shadow_timeout_s: float = 2.0
) -> tuple[Scorer, ModelRunner, RecordingSender, PredictionPublisher]:
    runner = ModelRunner()
    producer = RecordingSender()
    publisher = PredictionPublisher(producer, "preds")
    features = FakeFeatures(OnlineFeatures({"v:a": 1.0, "v:b": 2.0, "v:c": 3.0}))
    scorer = Scorer(
        c, features, runner, publisher, max_shadow_in_flight=max_shadow_in_flight, shadow_timeout_s=shadow_timeout_s
    )
    return scorer, runner, producer, publisher


def entity_request(n: int, **fields: object) -> inference_pb2.ScoreRequest:
    request = valid_request(**fields)
    request.entity_ids["account"] = f"a-{n}"
    return request


def shadow_count(outcome: str, model: str = "risk") -> float:
    return REGISTRY.get_sample_value("aimesh_inference_shadow_total", {"model": model, "outcome": outcome}) or 0.0


def predictions(producer: RecordingSender) -> list[inference_events.Prediction]:
    found = [message for _, message, _, _ in producer.sent]
    assert all(isinstance(p, inference_events.Prediction) for p in found)
    return found  # type: ignore[return-value]


def test_bucket_is_deterministic_and_uniform() -> None:
    assert bucket("risk", "a-1") == 0.3292049259405716, "the same in every process and release (no hash seed)"
    assert bucket("risk", "a-1") != bucket("other", "a-1")
    values = [bucket("risk", f"a-{n}") for n in range(ENTITIES)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.45 < sum(values) / ENTITIES < 0.55


async def test_canary_routes_a_sticky_tenth_of_entities() -> None:
    events = (policy(canary=2, weight=0.1),)
    first, runner, _, publisher = scorer(policy_catalog(*events))
    replica = policy_catalog(*events)
    second, *_ = scorer(replica)
    requests = [entity_request(n) for n in range(ENTITIES)]
    answers = await asyncio.gather(*(first.score(r, time_left=None) for r in requests))
    versions = [a.model_version for a in answers]
    assert 0.08 <= versions.count(2) / ENTITIES <= 0.12
    for answer in answers:
        assert (answer.model_version, answer.route) in {
            (1, inference_pb2.ROUTE_CHAMPION),
            (2, inference_pb2.ROUTE_CANARY),
        }
        assert answer.score == pytest.approx(answer.model_version + 0.06)
    sample = requests[:500]
    again = await asyncio.gather(*(first.score(r, time_left=None) for r in sample))
    other = await asyncio.gather(*(second.score(r, time_left=None) for r in sample))
    assert [a.model_version for a in again] == versions[:500], "one entity always gets the same version"
    assert [a.model_version for a in other] == versions[:500], "the split is the same in another scorer (replica)"
    routed = [
        route_request(replica, "risk", None, None, default_alias="champion", entity_ids=r.entity_ids, request_id="")
        for r in requests
    ]
    assert [d.target.version for d in routed] == versions
    await publisher.drain()
    assert {call["model"] for call in runner.calls} == {"risk_v1", "risk_v2"}


async def test_canary_key_is_the_key_entity_not_the_request() -> None:
    c = policy_catalog(policy(canary=2, weight=0.5))
    s, *_ = scorer(c)
    for n in range(20):
        routed = {
            (await s.score(entity_request(n, request_id=f"r-{n}-{k}"), time_left=None)).model_version for k in range(5)
        }
        assert len(routed) == 1, "another request id or user of the same account does not move it"


@pytest.mark.parametrize(("weight", "expected"), [(0.0, {1}), (1.0, {2})])
def test_weight_edges(weight: float, expected: set[int]) -> None:
    c = policy_catalog(policy(canary=2, weight=weight))
    decisions = [
        route_request(c, "risk", None, None, default_alias="champion", entity_ids={"account": f"a-{n}"}, request_id="")
        for n in range(1_000)
    ]
    assert {d.target.version for d in decisions} == expected


async def test_explicit_alias_or_version_bypasses_the_policy() -> None:
    c = policy_catalog(policy(canary=2, weight=1.0, shadow=2, share=1.0))
    s, _, producer, publisher = scorer(c)
    by_alias = await s.score(entity_request(1, alias="champion"), time_left=None)
    assert (by_alias.model_version, by_alias.route) == (1, inference_pb2.ROUTE_CHAMPION)
    pinned = await s.score(entity_request(1, version=1), time_left=None)
    assert (pinned.model_version, pinned.route) == (1, inference_pb2.ROUTE_PINNED)
    await s.drain_shadows()
    await publisher.drain()
    assert [p.route for p in predictions(producer)] == [inference_pb2.ROUTE_CHAMPION, inference_pb2.ROUTE_PINNED]
    default = await s.score(entity_request(1), time_left=None)
    assert (default.model_version, default.route) == (2, inference_pb2.ROUTE_CANARY)


def test_canary_waits_for_its_version_to_be_registered() -> None:
    c = catalog(version(1), alias(1), policy(canary=3, weight=1.0, shadow=4, share=1.0))

    def decide() -> RouteDecision:
        return route_request(
            c, "risk", None, None, default_alias="champion", entity_ids={"account": "a-1"}, request_id="r"
        )

    assert (decide().target.version, decide().route, decide().shadow) == (1, inference_pb2.ROUTE_CHAMPION, None)
    assert [v.routes for v in routed_versions(c)] == [("risk version 1 (alias champion)",)]
    c.apply(version(3))
    c.apply(version(4))
    decision = decide()
    assert (decision.target.version, decision.route) == (3, inference_pb2.ROUTE_CANARY)
    assert decision.shadow is not None and decision.shadow.target.version == 4
    assert [v.describe() for v in routed_versions(c)] == [
        "risk version 1 (alias champion) -> Triton 'risk_v1' version 1",
        "risk version 3 (canary 100%) -> Triton 'risk_v3' version 1",
        "risk version 4 (shadow 100%) -> Triton 'risk_v4' version 1",
    ]


def test_canary_equal_to_the_champion_is_the_champion_route() -> None:
    c = policy_catalog(policy(canary=1, weight=1.0, shadow=1, share=1.0))
    decision = route_request(c, "risk", None, None, default_alias="champion", entity_ids={}, request_id="r")
    assert (decision.target.version, decision.route, decision.shadow) == (1, inference_pb2.ROUTE_CHAMPION, None)


def test_shadow_share_is_sticky_per_request_id_and_independent_of_the_canary() -> None:
    c = catalog(version(1), version(2), version(3), alias(1), policy(canary=2, weight=0.5, shadow=3, share=0.3))

    def mirrored(n: int) -> tuple[int, bool]:
        key = f"k-{n}"
        decision = route_request(
            c, "risk", None, None, default_alias="champion", entity_ids={"account": key}, request_id=key
        )
        assert decision.shadow is not None and decision.shadow.target.version == 3
        return decision.target.version, decision.shadow.mirrors(key)

    seen = [mirrored(n) for n in range(ENTITIES)]
    assert seen == [mirrored(n) for n in range(ENTITIES)]
    for served in (1, 2):
        flags = [flag for v, flag in seen if v == served]
        assert 0.25 <= sum(flags) / len(flags) <= 0.35, "the same key falls in both shares independently"


async def test_shadow_is_published_and_never_changes_the_response() -> None:
    plain, _, plain_producer, plain_publisher = scorer(policy_catalog())
    shadowed, runner, producer, publisher = scorer(policy_catalog(policy(shadow=2, share=1.0)))
    request = entity_request(7, request_id="r-7")
    expected = await plain.score(request, time_left=1.0)
    answer = await shadowed.score(request, time_left=1.0)
    assert answer.event_id != expected.event_id
    answer.event_id = expected.event_id
    assert answer == expected
    assert (answer.model_version, answer.route) == (1, inference_pb2.ROUTE_CHAMPION)
    before = shadow_count("scored")
    await shadowed.drain_shadows()
    await publisher.drain()
    await plain_publisher.drain()
    assert shadow_count("scored") == before + 1
    assert len(predictions(plain_producer)) == 1
    live, mirror = predictions(producer)
    assert (live.route, live.shadow, live.model_version) == (inference_pb2.ROUTE_CHAMPION, False, 1)
    assert (mirror.route, mirror.shadow, mirror.model_version) == (inference_pb2.ROUTE_SHADOW, True, 2)
    assert mirror.request_id == live.request_id == "r-7"
    assert mirror.event_id and mirror.event_id != live.event_id
    assert mirror.score == pytest.approx(2.06) and live.score == pytest.approx(1.06)
    assert mirror.alias == "champion"
    assert dict(mirror.entity_ids) == dict(request.entity_ids)
    [_, (_, _, mirror_key, _)] = producer.sent
    assert mirror_key == "a-7"
    assert [call["model"] for call in runner.calls] == ["risk_v1", "risk_v2"]


async def test_shadow_of_a_request_without_id_gets_the_answered_id() -> None:
    s, _, producer, publisher = scorer(policy_catalog(policy(shadow=2, share=1.0)))
    answer = await s.score(entity_request(1), time_left=None)
    await s.drain_shadows()
    await publisher.drain()
    assert [p.request_id for p in predictions(producer)] == [answer.request_id, answer.request_id]


async def test_failing_shadow_is_counted_and_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    s, runner, producer, publisher = scorer(policy_catalog(policy(shadow=2, share=1.0)))
    runner.errors["risk_v2"] = Unavailable("shadow model is down")
    before = shadow_count("failed")
    with caplog.at_level(logging.WARNING, logger="aimesh.inference.shadows"):
        answer = await s.score(entity_request(1), time_left=1.0)
        await s.drain_shadows()
    await publisher.drain()
    assert answer.model_version == 1
    assert shadow_count("failed") == before + 1
    [record] = [r for r in caplog.records if r.name == "aimesh.inference.shadows"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "shadow model is down" in record.getMessage()
    assert [p.route for p in predictions(producer)] == [inference_pb2.ROUTE_CHAMPION]


async def test_slow_shadow_never_delays_the_caller() -> None:
    s, runner, producer, publisher = scorer(policy_catalog(policy(shadow=2, share=1.0)))
    runner.delays["risk_v2"] = 0.5
    started = time.perf_counter()
    answer = await s.score(entity_request(1), time_left=1.0)
    took = time.perf_counter() - started
    assert took < 0.2, f"Score waited {took:.3f} s for a shadow taking 0.5 s"
    assert answer.model_version == 1 and s.shadows_in_flight == 1
    assert await s.drain_shadows(2.0) == 0
    await publisher.drain()
    assert [p.route for p in predictions(producer)] == [inference_pb2.ROUTE_CHAMPION, inference_pb2.ROUTE_SHADOW]


async def test_shadow_past_its_timeout_fails_without_a_prediction() -> None:
    s, runner, producer, publisher = scorer(policy_catalog(policy(shadow=2, share=1.0)), shadow_timeout_s=0.05)
    runner.delays["risk_v2"] = 0.3
    before = shadow_count("failed")
    await s.score(entity_request(1), time_left=None)
    await s.drain_shadows()
    await publisher.drain()
    assert shadow_count("failed") == before + 1
    assert [p.route for p in predictions(producer)] == [inference_pb2.ROUTE_CHAMPION]


async def test_saturated_shadows_are_skipped_and_drain_cancels() -> None:
    s, runner, producer, publisher = scorer(policy_catalog(policy(shadow=2, share=1.0)), max_shadow_in_flight=2)
    runner.delays["risk_v2"] = 30.0
    skipped, cancelled = shadow_count("skipped"), shadow_count("cancelled")
    answers = [await s.score(entity_request(n), time_left=1.0) for n in range(5)]
    assert [a.model_version for a in answers] == [1] * 5
    assert s.shadows_in_flight == 2
    assert shadow_count("skipped") == skipped + 3
    assert await s.drain_shadows(0.05) == 2
    assert s.shadows_in_flight == 0 and shadow_count("cancelled") == cancelled + 2
    await publisher.drain()
    assert [p.route for p in predictions(producer)] == [inference_pb2.ROUTE_CHAMPION] * 5


def batch_rows(numbers: Sequence[int], prefix: str = "") -> list[inference_pb2.ScoreBatchRow]:
    """The ScoreBatch rows of ``entity_request(n)`` for each of ``numbers`` (request id ``<prefix><n>`` when
    ``prefix`` is given)."""
    rows = []
    for n in numbers:
        request = entity_request(n, request_id=f"{prefix}{n}" if prefix else "")
        rows.append(inference_pb2.ScoreBatchRow(request_id=request.request_id, entity_ids=request.entity_ids))
        for key, value in request.context.items():
            rows[-1].context[key].CopyFrom(value)
    return rows


async def score_batch(
    s: Scorer, rows: Sequence[inference_pb2.ScoreBatchRow], **request: object
) -> inference_pb2.ScoreBatchResponse:
    return await s.score_batch(
        inference_pb2.ScoreBatchRequest(model="risk", rows=rows, **request),  # type: ignore[arg-type]
        time_left=None,
        max_rows=1000,
    )


async def test_score_batch_routes_each_row_as_score_would_in_one_call_per_version() -> None:
    c = policy_catalog(policy(canary=2, weight=0.3))
    s, runner, producer, publisher = scorer(c)
    numbers = range(400)
    response = await score_batch(s, batch_rows(numbers, "r-"))
    await publisher.drain()
    assert sorted(call["model"] for call in runner.calls) == ["risk_v1", "risk_v2"], "one model call per version"
    alone, *_ = scorer(c)
    expected = [await alone.score(entity_request(n, request_id=f"r-{n}"), time_left=None) for n in numbers]
    answered = [result.response for result in response.results]
    assert [(a.model_version, a.route) for a in answered] == [(e.model_version, e.route) for e in expected]
    assert [a.score for a in answered] == pytest.approx([e.score for e in expected])
    assert [a.request_id for a in answered] == [f"r-{n}" for n in numbers]
    share = sum(a.model_version == 2 for a in answered) / len(answered)
    assert 0.2 <= share <= 0.4
    assert (response.model_version, response.route) == (1, inference_pb2.ROUTE_CHAMPION)
    assert sorted((p.request_id, p.route) for p in predictions(producer)) == sorted(
        (a.request_id, a.route) for a in answered
    )


async def test_score_batch_all_canaried_names_the_canary() -> None:
    s, runner, _, publisher = scorer(policy_catalog(policy(canary=2, weight=1.0, shadow=2, share=1.0)))
    response = await score_batch(s, batch_rows(range(5)))
    await publisher.drain()
    assert (response.model_version, response.route) == (2, inference_pb2.ROUTE_CANARY)
    assert {r.response.route for r in response.results} == {inference_pb2.ROUTE_CANARY}
    assert s.shadows_in_flight == 0 and [call["model"] for call in runner.calls] == ["risk_v2"]


async def test_score_batch_naming_an_alias_or_a_version_bypasses_the_policy() -> None:
    s, runner, _, publisher = scorer(policy_catalog(policy(canary=2, weight=1.0, shadow=2, share=1.0)))
    by_alias = await score_batch(s, batch_rows(range(5)), alias="champion")
    pinned = await score_batch(s, batch_rows(range(5)), version=1)
    await publisher.drain()
    assert (by_alias.model_version, by_alias.route) == (1, inference_pb2.ROUTE_CHAMPION)
    assert (pinned.model_version, pinned.route) == (1, inference_pb2.ROUTE_PINNED)
    assert s.shadows_in_flight == 0 and [call["model"] for call in runner.calls] == ["risk_v1", "risk_v1"]


async def test_score_batch_mirrors_its_rows_to_the_shadow_in_one_background_call() -> None:
    s, runner, producer, publisher = scorer(policy_catalog(policy(shadow=2, share=1.0)))
    runner.delays["risk_v2"] = 0.3
    before = shadow_count("scored")
    started = time.perf_counter()
    response = await score_batch(s, batch_rows(range(6), "b-"))
    assert time.perf_counter() - started < 0.2, "the batch waited for its shadow"
    assert {r.response.route for r in response.results} == {inference_pb2.ROUTE_CHAMPION}
    assert s.shadows_in_flight == 1
    await s.drain_shadows()
    await publisher.drain()
    assert [call["model"] for call in runner.calls] == ["risk_v1", "risk_v2"]
    assert shadow_count("scored") == before + 6
    sent = predictions(producer)
    live = [p for p in sent if not p.shadow]
    mirrors = [p for p in sent if p.shadow]
    assert [p.request_id for p in mirrors] == [p.request_id for p in live] == [f"b-{n}" for n in range(6)]
    assert {(p.route, p.model_version) for p in mirrors} == {(inference_pb2.ROUTE_SHADOW, 2)}
    assert not {p.event_id for p in mirrors} & {r.response.event_id for r in response.results}


async def test_score_batch_with_a_failing_version_and_no_fallback_emits_nothing() -> None:
    s, runner, producer, publisher = scorer(policy_catalog(policy(canary=2, weight=0.5)))
    runner.errors["risk_v2"] = Unavailable("canary model is down")
    with pytest.raises(Unavailable, match="canary model is down"):
        await score_batch(s, batch_rows(range(40)))
    await publisher.drain()
    assert producer.sent == [], "no Prediction of the version that did answer: the call failed"


async def test_score_batch_falls_back_per_version() -> None:
    fallback = policy(canary=2, weight=0.5)
    fallback.traffic_policy.fallback.constant_score = 0.25
    s, runner, _, publisher = scorer(policy_catalog(fallback))
    runner.errors["risk_v2"] = Unavailable("canary model is down")
    response = await score_batch(s, batch_rows(range(40)))
    await publisher.drain()
    answered = [r.response for r in response.results]
    fell_back = [a for a in answered if a.route == inference_pb2.ROUTE_FALLBACK]
    assert fell_back and {(a.model_version, a.score) for a in fell_back} == {(2, 0.25)}
    assert {a.route for a in answered if a not in fell_back} == {inference_pb2.ROUTE_CHAMPION}
    assert (response.model_version, response.route) == (1, inference_pb2.ROUTE_CHAMPION)


async def test_recommend_follows_the_canary() -> None:
    c = test_next_item.catalog(test_next_item.next_item_signature(), test_next_item.next_item_signature())
    c.apply(policy(canary=2, weight=1.0, model="next"))
    ranker, _, runner, _, publisher = test_next_item.ranker_of(c)
    canary = await ranker.rank(test_next_item.request(), time_left=None)
    pinned = await ranker.rank(test_next_item.request(version=1), time_left=None)
    await publisher.drain()
    assert (canary.model_version, canary.route) == (2, inference_pb2.ROUTE_CANARY)
    assert (pinned.model_version, pinned.route) == (1, inference_pb2.ROUTE_PINNED)
    assert [call["version"] for call in runner.calls] == [2, 1]


async def test_recommend_mirrors_to_its_shadow_without_changing_the_answer() -> None:
    signature = test_next_item.next_item_signature()
    shadowed = test_next_item.catalog(signature, signature)
    shadowed.apply(policy(shadow=2, share=1.0, model="next"))
    runner = test_next_item.FakeRunner()
    producer = RecordingSender()
    publisher = PredictionPublisher(producer, "preds")
    shadows = ShadowTasks()
    features = test_next_item.FakeFeatures(test_next_item.online(("i1", "i2")))
    ranker = NextItemRanker(shadowed, features, runner, publisher, shadows=shadows)
    plain, *_ = test_next_item.ranker_of(test_next_item.catalog(signature, signature))
    before = shadow_count("scored", model="next")
    expected = await plain.rank(test_next_item.request(request_id="r-1"), time_left=1.0)
    answer = await ranker.rank(test_next_item.request(request_id="r-1"), time_left=1.0)
    assert answer.event_id != expected.event_id
    answer.event_id = expected.event_id
    assert answer == expected
    assert shadows.in_flight == 1
    assert await shadows.drain(2.0) == 0
    await publisher.drain()
    assert shadow_count("scored", model="next") == before + 1
    live, mirror = predictions(producer)
    assert (live.route, live.shadow, live.model_version) == (inference_pb2.ROUTE_CHAMPION, False, 1)
    assert (mirror.route, mirror.shadow, mirror.model_version) == (inference_pb2.ROUTE_SHADOW, True, 2)
    assert mirror.request_id == live.request_id == "r-1" and mirror.event_id != live.event_id
    assert list(mirror.items) == list(live.items) and mirror.alias == "champion"
    assert [call["version"] for call in runner.calls] == [1, 2]


async def test_recommend_without_shadow_tasks_mirrors_nothing() -> None:
    c = test_next_item.catalog(test_next_item.next_item_signature(), test_next_item.next_item_signature())
    c.apply(policy(shadow=2, share=1.0, model="next"))
    ranker, _, runner, producer, publisher = test_next_item.ranker_of(c)
    await ranker.rank(test_next_item.request(), time_left=None)
    await publisher.drain()
    assert [p.route for p in predictions(producer)] == [inference_pb2.ROUTE_CHAMPION]
    assert [call["version"] for call in runner.calls] == [1]


async def test_a_failing_shadow_never_opens_the_live_breakers() -> None:
    runner = ModelRunner()
    runner.errors["risk_v2"] = Unavailable("shadow model is down")
    publisher = PredictionPublisher(RecordingSender(), "preds")
    features = FakeFeatures(OnlineFeatures({"v:a": 1.0, "v:b": 2.0, "v:c": 3.0}))
    live = ModelBreakers("Triton", failures=1)
    shadows = ShadowTasks(breaker_failures=1)
    s = Scorer(
        policy_catalog(policy(shadow=2, share=1.0)), features, runner, publisher, shadows=shadows, triton_breakers=live
    )
    for n in range(4):
        answer = await s.score(entity_request(n), time_left=1.0)
        await s.drain_shadows()
        assert answer.route == inference_pb2.ROUTE_CHAMPION, "one shared failure would have opened the live breaker"
    await publisher.drain()
    assert {key: b.state for key, b in live.breakers.items()} == {("risk_v1", 1): BreakerState.CLOSED}
    assert {key: b.state for key, b in shadows.triton_breakers.breakers.items()} == {("risk_v2", 1): BreakerState.OPEN}
    assert [call["model"] for call in runner.calls] == ["risk_v1"] * 4


async def test_a_pinned_version_triton_cannot_serve_opens_its_own_breaker_only() -> None:
    runner = ModelRunner()
    runner.errors["risk_v2"] = Unavailable("Triton model 'risk_v2': Request for unknown model: 'risk_v2' is not found")
    publisher = PredictionPublisher(RecordingSender(), "preds")
    features = FakeFeatures(OnlineFeatures({"v:a": 1.0, "v:b": 2.0, "v:c": 3.0}))
    s = Scorer(policy_catalog(), features, runner, publisher, triton_breakers=ModelBreakers("Triton", failures=2))
    pinned: list[str] = []
    for n in range(4):
        with pytest.raises(Unavailable) as raised:
            await s.score(entity_request(n, version=2), time_left=1.0)
        pinned.append(str(raised.value))
    answers = [await s.score(entity_request(n), time_left=1.0) for n in range(5)]
    await publisher.drain()
    assert ["unknown model" in m for m in pinned] == [True, True, False, False]
    assert all("circuit open: Triton model 'risk_v2' version 1 failed 2 times" in m for m in pinned[2:]), pinned
    assert [a.route for a in answers] == [inference_pb2.ROUTE_CHAMPION] * 5, "the champion's calls go on"
    assert [call["model"] for call in runner.calls] == ["risk_v1"] * 5
    states = {key: b.state for key, b in s.triton_breakers.breakers.items()}
    assert states == {("risk_v2", 1): BreakerState.OPEN, ("risk_v1", 1): BreakerState.CLOSED}


async def test_recommend_answering_the_popular_items_mirrors_nothing() -> None:
    signature = test_next_item.next_item_signature()
    c = test_next_item.catalog(signature, signature)
    c.apply(policy(shadow=2, share=1.0, model="next"))
    runner = test_next_item.FakeRunner(error=Unavailable("Triton is down"))
    publisher = PredictionPublisher(RecordingSender(), "preds")
    shadows = ShadowTasks()
    features = test_next_item.FakeFeatures(test_next_item.online(("i1", "i2")))
    ranker = NextItemRanker(c, features, runner, publisher, shadows=shadows)
    answer = await ranker.rank(test_next_item.request(), time_left=1.0)
    await publisher.drain()
    assert answer.fallback and shadows.in_flight == 0, "an outage's answer is not mirrored to the failing dependency"


async def test_a_slow_shadow_dependency_fails_on_its_breaker_before_the_task_times_out() -> None:
    runner = ModelRunner()
    runner.delays["risk_v2"] = 1.0
    publisher = PredictionPublisher(RecordingSender(), "preds")
    features = FakeFeatures(OnlineFeatures({"v:a": 1.0, "v:b": 2.0, "v:c": 3.0}))
    shadows = ShadowTasks(timeout_s=0.2, breaker_failures=1)
    s = Scorer(policy_catalog(policy(shadow=2, share=1.0)), features, runner, publisher, shadows=shadows)
    await s.score(entity_request(1), time_left=1.0)
    await s.drain_shadows()
    await publisher.drain()
    [breaker] = shadows.triton_breakers.breakers.values()
    assert breaker.state is BreakerState.OPEN, "the too-slow call is a failure to the shadow breaker"
