"""InferenceService refuses oversized ids and names before scoring or ranking (INVALID_ARGUMENT naming
the field and the limit): a 1 MB request id made a 1 MB Prediction that Elasticsearch refused. Recommend's
item lists are bounded in count and in each id's length."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest

from aimesh.api.inference.v1 import inference_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.inference.api import InferenceServiceApi, RequestLimits

HUGE = "r" * (1 << 20)


class Context:
    def time_remaining(self) -> float:
        return 1.0


class RecordingScorer:
    def __init__(self) -> None:
        self.seen: list[object] = []

    async def score(self, request: object, *, time_left: float | None) -> inference_pb2.ScoreResponse:
        self.seen.append(request)
        return inference_pb2.ScoreResponse(score=0.5)

    async def score_batch(
        self, request: object, *, time_left: float | None, max_rows: int
    ) -> inference_pb2.ScoreBatchResponse:
        self.seen.append(("batch", max_rows))
        return inference_pb2.ScoreBatchResponse()

    def signature(self, request: object) -> inference_pb2.GetModelSignatureResponse:
        self.seen.append(request)
        return inference_pb2.GetModelSignatureResponse()

    async def rank(self, request: object, *, time_left: float | None) -> inference_pb2.RecommendResponse:
        self.seen.append(request)
        return inference_pb2.RecommendResponse(max_k=7)


def api_of(fake: RecordingScorer) -> InferenceServiceApi:
    return InferenceServiceApi(cast(Any, fake), cast(Any, fake))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (inference_pb2.ScoreRequest(request_id=HUGE, model="m"), "request_id"),
        (inference_pb2.ScoreRequest(model=HUGE), "model"),
        (inference_pb2.ScoreRequest(model="m", alias=HUGE), "alias"),
    ],
)
async def test_oversized_score_fields_are_invalid_argument(request_: inference_pb2.ScoreRequest, field: str) -> None:
    scorer = RecordingScorer()
    with pytest.raises(InvalidArgument, match=f"^{field} is 1048576 bytes long; the limit is 256 bytes"):
        await api_of(scorer).Score(request_, cast(Any, Context()))
    assert scorer.seen == []


async def test_names_up_to_the_limit_are_scored_and_signatures_bounded_too() -> None:
    scorer = RecordingScorer()
    api = api_of(scorer)
    ok = inference_pb2.ScoreRequest(request_id="r" * 256, model="m" * 256, alias="a" * 256)
    assert (await api.Score(ok, cast(Any, Context()))).score == 0.5
    with pytest.raises(InvalidArgument, match=r"^model is 1048576 bytes long"):
        await api.GetModelSignature(inference_pb2.GetModelSignatureRequest(model=HUGE), cast(Any, Context()))
    assert len(scorer.seen) == 1


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (inference_pb2.RecommendRequest(request_id=HUGE, model="m"), "request_id is 1048576 bytes long"),
        (inference_pb2.RecommendRequest(model=HUGE), "model is 1048576 bytes long"),
        (inference_pb2.RecommendRequest(model="m", alias=HUGE), "alias is 1048576 bytes long"),
        (inference_pb2.RecommendRequest(model="m", context_items=["i"] * 1001), "context_items holds 1001 ids"),
        (inference_pb2.RecommendRequest(model="m", exclude_items=["i"] * 1001), "exclude_items holds 1001 ids"),
        (inference_pb2.RecommendRequest(model="m", context_items=["i", "x" * 257]), r"context_items\[1\] is 257"),
        (inference_pb2.RecommendRequest(model="m", exclude_items=["x" * 300]), r"exclude_items\[0\] is 300"),
    ],
)
async def test_oversized_rank_fields_are_invalid_argument(
    request_: inference_pb2.RecommendRequest, message: str
) -> None:
    recorder = RecordingScorer()
    with pytest.raises(InvalidArgument, match=f"^{message}"):
        await api_of(recorder).Recommend(request_, cast(Any, Context()))
    assert recorder.seen == []


async def test_rank_item_lists_up_to_the_limit_are_passed_on() -> None:
    recorder = RecordingScorer()
    ok = inference_pb2.RecommendRequest(model="m", context_items=["c" * 256] * 1000, exclude_items=["e"] * 1000)
    assert (await api_of(recorder).Recommend(ok, cast(Any, Context()))).max_k == 7
    assert recorder.seen == [ok]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (inference_pb2.ScoreBatchRequest(model=HUGE), "model"),
        (inference_pb2.ScoreBatchRequest(model="m", alias=HUGE), "alias"),
        (
            inference_pb2.ScoreBatchRequest(
                model="m", rows=[inference_pb2.ScoreBatchRow(), inference_pb2.ScoreBatchRow(request_id=HUGE)]
            ),
            r"rows\[1\].request_id",
        ),
    ],
)
async def test_oversized_score_batch_fields_are_invalid_argument(
    request_: inference_pb2.ScoreBatchRequest, field: str
) -> None:
    scorer = RecordingScorer()
    with pytest.raises(InvalidArgument, match=f"^{field} is 1048576 bytes long; the limit is 256 bytes"):
        await api_of(scorer).ScoreBatch(request_, cast(Any, Context()))
    assert scorer.seen == []


async def test_score_batch_passes_the_configured_row_limit() -> None:
    scorer = RecordingScorer()
    api = InferenceServiceApi(cast(Any, scorer), cast(Any, scorer), max_batch_rows=3)
    await api.ScoreBatch(inference_pb2.ScoreBatchRequest(model="m"), cast(Any, Context()))
    assert scorer.seen == [("batch", 3)]


def limited(fake: RecordingScorer) -> InferenceServiceApi:
    return InferenceServiceApi(
        cast(Any, fake), cast(Any, fake), limits=RequestLimits(id_bytes=32, map_entries=3, request_items=2)
    )


def score_request(entries: int = 0, **fields: Any) -> inference_pb2.ScoreRequest:
    request = inference_pb2.ScoreRequest(model="m", **fields)
    for i in range(entries):
        request.context[f"c{i}"].double_value = 1.0
    return request


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (score_request(4), "context holds 4 entries; the limit is 3"),
        (score_request(features={f"f{i}": 1.0 for i in range(4)}), "features holds 4 entries; the limit is 3"),
        (score_request(entity_ids={f"e{i}": "x" for i in range(4)}), "entity_ids holds 4 entries; the limit is 3"),
        (score_request(entity_ids={"account": "x" * 33}), "entity_ids['account'] is 33 bytes long; the limit is 32"),
        (score_request(entity_ids={"k" * 33: "x"}), "entity_ids key is 33 bytes long; the limit is 32"),
        (score_request(request_id="r" * 33), "request_id is 33 bytes long; the limit is 32"),
    ],
)
async def test_the_configured_limits_name_the_field_and_the_limit(
    request_: inference_pb2.ScoreRequest, message: str
) -> None:
    scorer = RecordingScorer()
    with pytest.raises(InvalidArgument, match=f"^{re.escape(message)}"):
        await limited(scorer).Score(request_, cast(Any, Context()))
    assert scorer.seen == []
    assert (await limited(scorer).Score(score_request(3), cast(Any, Context()))).score == 0.5, "3 entries pass"


async def test_batch_rows_and_recommend_items_are_held_to_the_limits() -> None:
    scorer = RecordingScorer()
    api = limited(scorer)
    rows = [inference_pb2.ScoreBatchRow(), inference_pb2.ScoreBatchRow(features={f"f{i}": 1.0 for i in range(4)})]
    with pytest.raises(InvalidArgument, match=r"^rows\[1\]\.features holds 4 entries; the limit is 3"):
        await api.ScoreBatch(inference_pb2.ScoreBatchRequest(model="m", rows=rows), cast(Any, Context()))
    with pytest.raises(InvalidArgument, match=r"^exclude_items holds 3 ids; the limit is 2"):
        await api.Recommend(
            inference_pb2.RecommendRequest(model="m", exclude_items=["a", "b", "c"]), cast(Any, Context())
        )
    with pytest.raises(InvalidArgument, match=r"^entity_ids\['user'\] is 33 bytes long"):
        await api.Recommend(
            inference_pb2.RecommendRequest(model="m", entity_ids={"user": "u" * 33}), cast(Any, Context())
        )
    assert scorer.seen == []
