"""NextItemRanker with in-memory fakes of the feature source, the model runner and the producer: the sequence
it feeds the model (history then context items, encoded by the signature), the ranking it answers (indexes
mapped to ids, exclusions dropped, first k), the statuses (NOT_FOUND, FAILED_PRECONDITION for a model of
another task or an empty vocabulary, INVALID_ARGUMENT for k), unknown context items, the popular-items
fallback (cold entities, and outages of Triton or the feature service, with its breaker) and the Prediction
event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.auth import Principal, bind_principal, reset_principal
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from aimesh.core.model_catalog import ModelCatalog
from aimesh.core.testing import RecordingSender
from aimesh.inference.features import FeatureLookup, OnlineFeatures
from aimesh.inference.next_item import NextItemRanker
from aimesh.inference.predictions import PredictionPublisher
from aimesh.inference.scoring import Scorer

SEQUENCE = "history:recent"
COUNT = "history:count"
VOCABULARY = ["i1", "i2", "i3", "i4", "i5", "i6"]
LENGTH = 4
MAX_K = 5
POPULAR = ["i6", "i2", "i9", "i1"]
SHARES = [0.4, 0.3, 0.2]


class FakeFeatures:
    """Answers every lookup with ``result`` after ``delay`` seconds; records the lookups."""

    def __init__(self, result: OnlineFeatures, delay: float = 0.0) -> None:
        self.result = result
        self.delay = delay
        self.lookups: list[FeatureLookup] = []

    async def online_features(
        self, lookups: Sequence[FeatureLookup], *, time_left: float | None
    ) -> list[OnlineFeatures]:
        self.lookups.extend(lookups)
        await asyncio.sleep(self.delay)
        return [self.result for _ in lookups]


def ranking(indexes: Sequence[float]) -> Callable[[list[float]], dict[str, list[float]]]:
    """A model answering ``indexes`` with descending scores, whatever the row."""
    return lambda row: {"OUT_I": list(indexes), "OUT_S": [0.5 / (n + 1) for n in range(len(indexes))]}


class FakeRunner:
    """Returns ``tensors(row)`` (default: indexes 5, 4, 3, 2, 1) or raises ``error``; records every call."""

    def __init__(
        self, tensors: Callable[[list[float]], dict[str, list[float]]] | None = None, error: Exception | None = None
    ) -> None:
        self.tensors = tensors or ranking([5, 4, 3, 2, 1])
        self.error = error
        self.calls: list[dict[str, Any]] = []

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
        self.calls.extend(
            {"model": model, "version": version, "row": list(row), "input": input_tensor, "outputs": list(outputs)}
            for row in rows
        )
        if self.error is not None:
            raise self.error
        return [self.tensors(list(row)) for row in rows]


def next_item_signature(
    vocabulary: Sequence[str] = VOCABULARY, max_k: int = MAX_K, task: signature_pb2.Task = signature_pb2.TASK_NEXT_ITEM
) -> signature_pb2.ModelSignature:
    """A sequence input (vocabulary, length 4) then a numeric one; outputs items (indexes) and scores."""
    return signature_pb2.ModelSignature(
        inputs=[
            signature_pb2.SignatureInput(
                name=SEQUENCE, kind=signature_pb2.INPUT_KIND_SEQUENCE, vocabulary=vocabulary, length=LENGTH
            ),
            signature_pb2.SignatureInput(name=COUNT, kind=signature_pb2.INPUT_KIND_NUMERIC, missing_value=0.5),
        ],
        outputs=[
            signature_pb2.SignatureOutput(
                name="items",
                tensor="OUT_I",
                dtype=common_pb2.VALUE_TYPE_DOUBLE,
                shape=[max_k],
                indexes_vocabulary_of=SEQUENCE,
            ),
            signature_pb2.SignatureOutput(
                name="scores", tensor="OUT_S", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[max_k]
            ),
        ],
        entity_types=["member"],
        key_entity="member",
        task=task,
        input_tensor="IN",
        popular_items=POPULAR,
        popular_item_shares=SHARES,
    )


def catalog(*signatures: signature_pb2.ModelSignature) -> ModelCatalog:
    """Model ``next`` with one version per signature (1, 2 ...), champion -> 1."""
    c = ModelCatalog()
    for version, signature in enumerate(signatures or (next_item_signature(),), start=1):
        c.apply(
            events_pb2.ModelEvent(
                kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
                model_name="next",
                version=version,
                triton_model_name="next_tr",
                triton_model_version=version,
                features=[i.name for i in signature.inputs],
                feature_service="next_v1",
                signature=signature,
            )
        )
    c.apply(
        events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
            model_name="next",
            version=1,
            alias_change=training_pb2.AliasChange(alias="champion", new_version=1),
        )
    )
    return c


def online(history: tuple[str, ...] | None, count: float | None = 3.0) -> OnlineFeatures:
    values: dict[str, Any] = {}
    if history is not None:
        values[SEQUENCE] = history
    if count is not None:
        values[COUNT] = count
    missing = tuple(n for n in (SEQUENCE, COUNT) if n not in values)
    seen = datetime.now(UTC) - timedelta(seconds=20)
    return OnlineFeatures(values, missing, {name: seen for name in values})


def ranker_of(
    c: ModelCatalog | None = None, features: FakeFeatures | None = None, runner: FakeRunner | None = None
) -> tuple[NextItemRanker, FakeFeatures, FakeRunner, RecordingSender, PredictionPublisher]:
    features = features or FakeFeatures(online(("i1", "i2")))
    runner = runner or FakeRunner()
    producer = RecordingSender()
    publisher = PredictionPublisher(producer, "preds")
    return NextItemRanker(c or catalog(), features, runner, publisher), features, runner, producer, publisher


def request(**fields: Any) -> inference_pb2.RecommendRequest:
    fields.setdefault("entity_ids", {"member": "m-1"})
    return inference_pb2.RecommendRequest(model="next", **fields)


def ids(response: inference_pb2.RecommendResponse) -> list[str]:
    return [item.item_id for item in response.items]


async def test_the_model_ranks_history_then_context_and_exclusions_are_dropped() -> None:
    ranker, features, runner, producer, publisher = ranker_of()
    response = await ranker.rank(
        request(request_id="r-1", context_items=["i3"], exclude_items=["i4", "i9"], k=3), time_left=2.0
    )
    await publisher.drain()
    [call] = runner.calls
    assert call["row"] == [0.0, 1.0, 2.0, 3.0, 3.0], "history i1, i2 then context i3, right-aligned; then count"
    assert (call["model"], call["version"], call["input"], call["outputs"]) == ("next_tr", 1, "IN", ["OUT_I", "OUT_S"])
    assert ids(response) == ["i5", "i3", "i2"], "model order i5 i4 i3 i2 i1, i4 excluded, first 3"
    assert [item.score for item in response.items] == pytest.approx([0.5, 0.5 / 3, 0.5 / 4])
    assert (response.model_name, response.model_version, response.max_k) == ("next", 1, MAX_K)
    assert response.route == inference_pb2.ROUTE_CHAMPION and not response.fallback
    assert list(response.unknown_items) == []
    [lookup] = features.lookups
    assert (lookup.feature_service, dict(lookup.entity_ids)) == ("next_v1", {"member": "m-1"})
    [(topic, prediction, key, _)] = producer.sent
    assert (topic, key) == ("preds", "m-1"), "keyed by the signature's key entity"
    assert isinstance(prediction, inference_events.Prediction)
    assert prediction.event_id == response.event_id and prediction.request_id == "r-1"
    assert list(prediction.items) == ["i5", "i3", "i2"]
    assert list(prediction.context_items) == ["i3"]
    assert list(prediction.exclude_items) == ["i4", "i9"]
    assert prediction.k == 3
    assert prediction.score == pytest.approx(0.5)
    assert prediction.route == inference_pb2.ROUTE_CHAMPION and prediction.alias == "champion"
    assert dict(prediction.features) == {COUNT: 3.0}, "a sequence input's columns are not one feature value"
    assert list(prediction.missing_features) == []
    assert 19.0 < prediction.feature_freshness_seconds < 30.0


async def test_the_newest_length_elements_are_fed_and_a_missing_number_gets_its_fill() -> None:
    features = FakeFeatures(online(("i1", "i2", "i3", "i4", "i5"), count=None))
    ranker, _, runner, producer, publisher = ranker_of(features=features)
    await ranker.rank(request(context_items=["i6"]), time_left=None)
    await publisher.drain()
    assert runner.calls[0]["row"] == [3.0, 4.0, 5.0, 6.0, 0.5]
    assert list(producer.sent[0][1].missing_features) == [COUNT]


@pytest.mark.parametrize(("max_k", "expected"), [(MAX_K, 5), (20, 10)])
async def test_k_zero_means_ten_or_max_k_when_fewer(max_k: int, expected: int) -> None:
    indexes = [(n % len(VOCABULARY)) + 1 for n in range(max_k)]
    ranker, _, _, producer, publisher = ranker_of(
        catalog(next_item_signature(max_k=max_k)), runner=FakeRunner(ranking(indexes))
    )
    response = await ranker.rank(request(), time_left=None)
    await publisher.drain()
    assert len(response.items) == expected and response.max_k == max_k
    assert producer.sent[0][1].k == expected


@pytest.mark.parametrize("k", [-1, MAX_K + 1, 2**31 - 1])
async def test_k_outside_one_to_max_k_is_invalid_argument_naming_both(k: int) -> None:
    ranker, features, runner, _, _ = ranker_of()
    with pytest.raises(InvalidArgument, match=rf"^k is {k}; model 'next' v1 answers k in \[1, {MAX_K}\]"):
        await ranker.rank(request(k=k), time_left=None)
    assert features.lookups == [] and runner.calls == []


async def test_k_equal_to_max_k_is_answered() -> None:
    ranker, _, _, _, _ = ranker_of()
    assert ids(await ranker.rank(request(k=MAX_K), time_left=None)) == ["i5", "i4", "i3", "i2", "i1"]


async def test_a_model_of_another_task_is_failed_precondition() -> None:
    other = next_item_signature(task=signature_pb2.TASK_BINARY_CLASSIFICATION)
    ranker, features, _, _, _ = ranker_of(catalog(other))
    with pytest.raises(FailedPrecondition, match="TASK_BINARY_CLASSIFICATION model; Recommend serves TASK_NEXT_ITEM"):
        await ranker.rank(request(), time_left=None)
    assert features.lookups == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.outputs[0].ClearField("indexes_vocabulary_of"), "has no output of item indexes"),
        (lambda s: setattr(s.outputs[0], "indexes_vocabulary_of", "nope"), "'nope', which is not one of its inputs"),
        (lambda s: setattr(s.outputs[1], "name", "probabilities"), "has no output 'scores'"),
        (lambda s: s.outputs[0].ClearField("shape"), "output 'items' has no fixed size"),
        (
            lambda s: setattr(s.inputs[0], "kind", signature_pb2.INPUT_KIND_CATEGORICAL),
            "is INPUT_KIND_CATEGORICAL, not INPUT_KIND_SEQUENCE",
        ),
    ],
)
async def test_a_next_item_signature_it_cannot_serve_is_failed_precondition(
    change: Callable[[signature_pb2.ModelSignature], object], message: str
) -> None:
    signature = next_item_signature()
    change(signature)
    ranker, _, _, _, _ = ranker_of(catalog(signature))
    with pytest.raises(FailedPrecondition, match=message):
        await ranker.rank(request(), time_left=None)


async def test_an_empty_vocabulary_is_failed_precondition() -> None:
    ranker, features, _, _, _ = ranker_of(catalog(next_item_signature(vocabulary=[])))
    with pytest.raises(FailedPrecondition, match="model 'next' v1 has an empty item vocabulary"):
        await ranker.rank(request(), time_left=None)
    assert features.lookups == []


async def test_unknown_model_alias_or_version_is_not_found_and_a_pin_is_pinned() -> None:
    ranker, _, runner, _, _ = ranker_of(catalog(next_item_signature(), next_item_signature()))
    for bad, text in (
        (inference_pb2.RecommendRequest(model="other"), "model 'other' is not registered"),
        (request(alias="canary"), "has no alias 'canary'; aliases: champion -> 1"),
        (request(version=9), "has no version 9; registered versions: 1, 2"),
    ):
        with pytest.raises(NotFound, match=text):
            await ranker.rank(bad, time_left=None)
    pinned = await ranker.rank(request(version=2), time_left=None)
    assert (pinned.route, pinned.model_version) == (inference_pb2.ROUTE_PINNED, 2)
    assert runner.calls[-1]["version"] == 2
    with pytest.raises(InvalidArgument, match="model is required"):
        await ranker.rank(inference_pb2.RecommendRequest(), time_left=None)


async def test_a_request_without_the_signatures_entity_is_invalid_argument() -> None:
    ranker, features, _, _, _ = ranker_of()
    with pytest.raises(InvalidArgument, match=r"entity_ids\['member'\] is missing"):
        await ranker.rank(request(entity_ids={"other": "x"}), time_left=None)
    assert features.lookups == []


async def test_unknown_context_items_are_listed_once_and_fed_as_unknown() -> None:
    ranker, _, runner, _, _ = ranker_of()
    response = await ranker.rank(request(context_items=["zz", "i3", "yy", "zz"]), time_left=None)
    assert list(response.unknown_items) == ["zz", "yy"]
    assert runner.calls[0]["row"][:LENGTH] == [0.0, 3.0, 0.0, 0.0], "the newest 4 of i1 i2 zz i3 yy zz"
    assert not response.fallback


@pytest.mark.parametrize(
    ("history", "context"),
    [(None, []), ((), []), ((), ["zz"]), (("old", "gone"), []), (None, ["zz", "yy"])],
    ids=["missing", "empty", "unknown-context", "unknown-history", "missing-unknown-context"],
)
async def test_no_known_history_or_context_answers_the_popular_items(
    history: tuple[str, ...] | None, context: list[str]
) -> None:
    features = FakeFeatures(online(history))
    ranker, _, runner, producer, publisher = ranker_of(features=features)
    response = await ranker.rank(request(context_items=context, exclude_items=["i2"], k=2), time_left=None)
    await publisher.drain()
    assert runner.calls == [], "the model is not called for a fallback"
    assert response.fallback and response.route == inference_pb2.ROUTE_FALLBACK
    assert [(i.item_id, i.score) for i in response.items] == [("i6", 0.4), ("i9", 0.2)]
    assert list(response.unknown_items) == list(dict.fromkeys(context))
    prediction = producer.sent[0][1]
    assert list(prediction.items) == ["i6", "i9"] and prediction.route == inference_pb2.ROUTE_FALLBACK
    assert prediction.alias == "champion" and prediction.score == pytest.approx(0.4)


async def test_popular_items_without_a_share_score_zero() -> None:
    ranker, _, _, _, _ = ranker_of(features=FakeFeatures(online(None)))
    response = await ranker.rank(request(k=4), time_left=None)
    assert [(i.item_id, i.score) for i in response.items] == [("i6", 0.4), ("i2", 0.3), ("i9", 0.2), ("i1", 0.0)]


async def test_a_known_context_item_without_history_is_ranked_by_the_model() -> None:
    ranker, _, runner, _, _ = ranker_of(features=FakeFeatures(online(None)))
    response = await ranker.rank(request(context_items=["i2"]), time_left=None)
    assert not response.fallback and runner.calls[0]["row"][:LENGTH] == [0.0, 0.0, 0.0, 2.0]


async def test_exclusions_may_leave_fewer_than_k() -> None:
    ranker, _, _, producer, publisher = ranker_of()
    response = await ranker.rank(request(k=5, exclude_items=["i1", "i2", "i3", "i5"]), time_left=None)
    await publisher.drain()
    assert ids(response) == ["i4"]
    excluded_all = await ranker.rank(request(exclude_items=VOCABULARY), time_left=None)
    await publisher.drain()
    assert ids(excluded_all) == [] and producer.sent[-1][1].score == 0.0


def fallback_count(cause: str, model: str = "next") -> float:
    return REGISTRY.get_sample_value("aimesh_inference_fallback_total", {"model": model, "cause": cause}) or 0.0


async def test_triton_down_answers_the_popular_items() -> None:
    runner = FakeRunner(error=Unavailable("Triton model 'next_tr': connection refused"))
    ranker, _, _, producer, publisher = ranker_of(runner=runner)
    before = fallback_count("unavailable")
    response = await ranker.rank(request(exclude_items=["i2"], k=2, request_id="r-9"), time_left=1.0)
    await publisher.drain()
    assert response.fallback and response.route == inference_pb2.ROUTE_FALLBACK
    assert [(i.item_id, i.score) for i in response.items] == [("i6", 0.4), ("i9", 0.2)]
    assert fallback_count("unavailable") == before + 1
    [(_, prediction, _, _)] = producer.sent
    assert (prediction.route, prediction.request_id, list(prediction.items)) == (
        inference_pb2.ROUTE_FALLBACK,
        "r-9",
        ["i6", "i9"],
    )


async def test_an_outage_without_popular_items_is_unavailable_and_emits_nothing() -> None:
    signature = next_item_signature()
    del signature.popular_items[:]
    runner = FakeRunner(error=Unavailable("Triton model 'next_tr': connection refused"))
    ranker, _, _, producer, publisher = ranker_of(catalog(signature), runner=runner)
    with pytest.raises(Unavailable, match=r"connection refused \(its signature lists no popular items"):
        await ranker.rank(request(), time_left=None)
    await publisher.drain()
    assert producer.sent == [], "no Prediction for a request that was not answered"


async def test_a_feature_service_too_slow_for_the_deadline_answers_the_popular_items_in_time() -> None:
    runner = FakeRunner()
    publisher = PredictionPublisher(RecordingSender(), "preds")
    features = FakeFeatures(online(("i1",)), delay=2.0)
    ranker = NextItemRanker(catalog(), features, runner, publisher, fallback_reserve_s=0.2)
    before = fallback_count("deadline")
    started = time.perf_counter()
    response = await ranker.rank(request(), time_left=0.5)
    took = time.perf_counter() - started
    await publisher.drain()
    assert took < 0.5, f"answered after {took:.3f} s, past the caller's 0.5 s"
    assert response.fallback and runner.calls == []
    assert fallback_count("deadline") == before + 1


async def test_triton_failing_opens_the_breaker_and_recommend_stops_calling_it() -> None:
    runner = FakeRunner(error=Unavailable("Triton model 'next_tr': connection refused"))
    ranker, _, _, _, publisher = ranker_of(runner=runner)
    answers = [await ranker.rank(request(), time_left=1.0) for _ in range(ranker.triton_breakers.failures + 3)]
    await publisher.drain()
    assert all(a.fallback for a in answers)
    assert len(runner.calls) == ranker.triton_breakers.failures, "an open breaker is not called"


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        (ranking([1, 2, 3]), r"returned 3 values in 'OUT_I'; its signature says 5"),
        (lambda row: {"OUT_I": [1.0, 2.0, 3.0, 4.0, 5.0]}, "returned no tensor in 'OUT_S'"),
        (ranking([1, 2, 3, 4, 7]), r"returned index 7 in 'OUT_I'; its vocabulary has 6 items \(indexes 1..6\)"),
        (ranking([0, 1, 2, 3, 4]), "returned index 0 in"),
        (ranking([1, 2.5, 3, 4, 5]), "returned index 2.5"),
        (ranking([1, float("nan"), 3, 4, 5]), "returned index nan"),
    ],
)
async def test_model_answers_disagreeing_with_the_signature_are_failed_precondition(
    tensors: Callable[[list[float]], dict[str, list[float]]], message: str
) -> None:
    ranker, _, _, _, _ = ranker_of(runner=FakeRunner(tensors))
    with pytest.raises(FailedPrecondition, match=message):
        await ranker.rank(request(), time_left=None)


async def test_the_prediction_names_the_callers_tenant_and_a_generated_request_id_keys_without_entity() -> None:
    signature = next_item_signature()
    signature.key_entity = ""
    ranker, _, _, producer, publisher = ranker_of(catalog(signature))
    token = bind_principal(Principal(subject="backend-1", tenant="shop-a", via="jwt"))
    try:
        response = await ranker.rank(request(), time_left=None)
    finally:
        reset_principal(token)
    await publisher.drain()
    [(_, prediction, key, _)] = producer.sent
    assert prediction.tenant == "shop-a"
    assert response.request_id and key == response.request_id == prediction.request_id


async def test_score_of_a_next_item_version_records_single_column_inputs_and_refuses_inline_sequences() -> None:
    producer = RecordingSender()
    publisher = PredictionPublisher(producer, "preds")
    runner = FakeRunner()
    scorer = Scorer(catalog(), FakeFeatures(online(("i1",))), runner, publisher)
    response = await scorer.score(
        inference_pb2.ScoreRequest(model="next", entity_ids={"member": "m-1"}), time_left=None
    )
    await publisher.drain()
    assert runner.calls[0]["row"] == [0.0, 0.0, 0.0, 1.0, 3.0]
    assert list(response.outputs["items"].values) == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert dict(producer.sent[0][1].features) == {COUNT: 3.0}
    with pytest.raises(InvalidArgument, match="is the sequence input 'history:recent': inline values are for numeric"):
        await scorer.score(
            inference_pb2.ScoreRequest(model="next", entity_ids={"member": "m-1"}, features={"recent": 1.0}),
            time_left=None,
        )
