"""ScoreBatch and the NaN/Inf output guard with the in-memory fakes of ``test_scoring``: one feature
lookup and one model call per batch, per-row statuses, answers equal to Score's, limits."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest

from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound
from aimesh.core.model_catalog import ModelCatalog
from aimesh.inference.features import FeatureLookup, OnlineFeatures

from .test_scoring import FakeFeatures, FakeRunner, alias, catalog, registered, scorer_of, signature


def batch_row(account: str, amount: float = 12.5, **fields: Any) -> inference_pb2.ScoreBatchRow:
    row = inference_pb2.ScoreBatchRow(entity_ids={"account": account, "user": "u-1"}, **fields)
    row.context["amount"].double_value = amount
    row.context["channel"].string_value = "web"
    return row


def as_score_request(row: inference_pb2.ScoreBatchRow) -> inference_pb2.ScoreRequest:
    """The Score request of one batch row (model "risk")."""
    return inference_pb2.ScoreRequest(
        model="risk", request_id=row.request_id, entity_ids=row.entity_ids, features=row.features, context=row.context
    )


def per_account(lookup: FeatureLookup) -> OnlineFeatures:
    """v:a = the number in the account id ("a-7" -> 7.0), v:b and v:c missing."""
    return OnlineFeatures({"v:a": float(lookup.entity_ids["account"].removeprefix("a-"))}, ("v:b", "v:c"))


def signed_catalog() -> ModelCatalog:
    return catalog(registered(4, signature()), alias(4))


async def test_a_batch_is_one_feature_lookup_and_one_model_call_with_scores_equal_to_score() -> None:
    scorer, features, runner, producer, publisher = scorer_of(signed_catalog(), FakeFeatures(per_account))
    rows = [batch_row(f"a-{n}", request_id=f"r-{n}") for n in range(50)]
    response = await scorer.score_batch(
        inference_pb2.ScoreBatchRequest(model="risk", rows=rows), time_left=2.0, max_rows=256
    )
    await publisher.drain()
    assert features.requests == 1 and len(features.calls) == 50
    assert len(runner.calls) == 1 and len(runner.rows) == 50
    assert (response.model_name, response.model_version, response.route) == ("risk", 4, inference_pb2.ROUTE_CHAMPION)
    assert [r.code for r in response.results] == [0] * 50
    assert [r.response.request_id for r in response.results] == [f"r-{n}" for n in range(50)]
    for n in (0, 7, 49):
        single, *_ = scorer_of(signed_catalog(), FakeFeatures(per_account))
        alone = await single.score(as_score_request(rows[n]), time_left=None)
        assert response.results[n].response.score == pytest.approx(alone.score)
        assert list(response.results[n].response.missing_features) == list(alone.missing_features)
    assert len(producer.sent) == 50
    assert {sent[1].event_id for sent in producer.sent} == {r.response.event_id for r in response.results}
    assert [sent[2] for sent in producer.sent] == [f"a-{n}" for n in range(50)], "keyed by the key entity, in order"


async def test_refused_rows_get_their_own_status_and_the_others_are_scored() -> None:
    scorer, features, runner, producer, publisher = scorer_of(signed_catalog(), FakeFeatures(per_account))
    no_context = inference_pb2.ScoreBatchRow(entity_ids={"account": "a-2", "user": "u-1"})
    rows = [
        batch_row("a-1"),
        no_context,
        batch_row("a-3", amount=math.nan),
        batch_row("a-4", features={"zz": 1.0}),
    ]
    response = await scorer.score_batch(
        inference_pb2.ScoreBatchRequest(model="risk", rows=rows), time_left=None, max_rows=256
    )
    await publisher.drain()
    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [r.code for r in response.results] == [0, invalid, invalid, invalid]
    assert "context['amount'] is missing" in response.results[1].message
    assert "expected a finite number" in response.results[2].message
    assert "'zz'" in response.results[3].message and not response.results[3].HasField("response")
    assert len(features.calls) == 1 and len(runner.rows) == 1 and len(producer.sent) == 1


async def test_a_batch_of_only_refused_rows_calls_nothing() -> None:
    scorer, features, runner, producer, _ = scorer_of(signed_catalog(), FakeFeatures(per_account))
    response = await scorer.score_batch(
        inference_pb2.ScoreBatchRequest(model="risk", rows=[inference_pb2.ScoreBatchRow()]), time_left=None, max_rows=8
    )
    assert [r.code for r in response.results] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert features.requests == 0 and runner.calls == [] and producer.sent == []


async def test_rows_with_every_input_inline_skip_the_feature_service_within_a_batch() -> None:
    scorer, features, runner, _, _ = scorer_of(signed_catalog(), FakeFeatures(per_account))
    inline = batch_row("a-5", features={"v:a": 1.0, "v:b": 2.0, "v:c": 3.0})
    response = await scorer.score_batch(
        inference_pb2.ScoreBatchRequest(model="risk", rows=[inline, batch_row("a-6")]), time_left=None, max_rows=8
    )
    assert [c["ids"]["account"] for c in features.calls] == ["a-6"]
    assert runner.rows == [[1.0, 2.0, 3.0], [6.0, -1.0, -1.0]]
    assert response.results[0].response.feature_freshness_seconds == 0.0


@pytest.mark.parametrize("count", [0, 9])
async def test_empty_and_oversized_batches_are_invalid_naming_the_limit(count: int) -> None:
    scorer, features, runner, _, _ = scorer_of(signed_catalog(), FakeFeatures(per_account))
    request = inference_pb2.ScoreBatchRequest(model="risk", rows=[batch_row("a-1")] * count)
    with pytest.raises(InvalidArgument, match=f"rows holds {count} rows; a batch holds 1 to 8"):
        await scorer.score_batch(request, time_left=None, max_rows=8)
    assert features.calls == [] and runner.calls == []


async def test_an_unknown_model_fails_the_whole_batch() -> None:
    scorer, *_ = scorer_of(signed_catalog())
    with pytest.raises(NotFound):
        await scorer.score_batch(
            inference_pb2.ScoreBatchRequest(model="nope", rows=[batch_row("a-1")]), time_left=None, max_rows=8
        )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_a_non_finite_model_output_is_never_ok(bad: float) -> None:
    runner = FakeRunner(lambda row: {"OUTPUT__0": [bad if row[0] == 3.0 else 0.5]})
    scorer, _, _, producer, publisher = scorer_of(signed_catalog(), FakeFeatures(per_account), runner)
    with pytest.raises(FailedPrecondition, match=r"returned .* in output 'score': not a usable score"):
        await scorer.score(as_score_request(batch_row("a-3")), time_left=None)
    response = await scorer.score_batch(
        inference_pb2.ScoreBatchRequest(model="risk", rows=[batch_row("a-3"), batch_row("a-1")]),
        time_left=None,
        max_rows=8,
    )
    await publisher.drain()
    assert [r.code for r in response.results] == [grpc.StatusCode.FAILED_PRECONDITION.value[0], 0]
    assert "not a usable score" in response.results[0].message
    assert [sent[2] for sent in producer.sent] == ["a-1"], "no Prediction for a score that was not returned"


def test_a_batch_row_carries_what_a_score_request_carries_per_row() -> None:
    row_fields = set(inference_pb2.ScoreBatchRow.DESCRIPTOR.fields_by_name)
    request_fields = set(inference_pb2.ScoreRequest.DESCRIPTOR.fields_by_name)
    assert row_fields <= request_fields
    assert request_fields - row_fields == {"model", "alias", "version"}
