"""Scorer with in-memory fakes of the feature source, the model runner and the producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message

from aimesh.api.common.v1 import common_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import DeadlineExceeded, InvalidArgument
from aimesh.core.model_catalog import ModelCatalog
from aimesh.core.testing import RecordingSender
from aimesh.inference.features import FeatureLookup, OnlineFeatures
from aimesh.inference.predictions import PredictionPublisher
from aimesh.inference.scoring import Scorer

FEATURES = ("v:a", "v:b", "v:c")


class FakeFeatures:
    def __init__(self, result: OnlineFeatures, delay: float = 0.0) -> None:
        self.result = result
        self.delay = delay
        self.calls: list[dict[str, Any]] = []

    async def online_features(self, lookup: FeatureLookup, *, time_left: float | None) -> OnlineFeatures:
        self.calls.append(
            {
                "service": lookup.feature_service,
                "ids": dict(lookup.entity_ids),
                "context": dict(lookup.context),
                "t": time_left,
            }
        )
        await asyncio.sleep(self.delay)
        return self.result


class FakeRunner:
    def __init__(self) -> None:
        self.rows: list[list[float]] = []

    async def score(self, model: str, version: int, row: Sequence[float], *, time_left: float | None) -> float:
        self.rows.append(list(row))
        return sum(row) / 100.0


def catalog() -> ModelCatalog:
    c = ModelCatalog()
    c.apply(
        events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
            model_name="fraud",
            version=3,
            triton_model_name="fraud_mlp",
            triton_model_version=1,
            features=FEATURES,
            feature_service="fraud_v1",
        )
    )
    c.apply(
        events_pb2.ModelEvent(
            kind=events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED,
            model_name="fraud",
            version=3,
            alias_change=training_pb2.AliasChange(alias="champion", new_version=3),
        )
    )
    return c


async def test_score_assembles_features_in_model_order_and_publishes() -> None:
    seen = datetime.now(UTC) - timedelta(seconds=30)
    features = FakeFeatures(OnlineFeatures({"v:a": 1.0, "v:b": 2.0}, ("v:c",), seen))
    runner, producer = FakeRunner(), RecordingSender()
    publisher = PredictionPublisher(producer, "preds")
    scorer = Scorer(catalog(), features, runner, publisher)
    request = inference_pb2.ScoreRequest(
        request_id="r-1",
        model="fraud",
        entity_ids={"card": "c-1", "customer": "u-1"},
        features={"v:b": 5.0},
        context={"amount": common_pb2.Value(double_value=12.5)},
    )
    response = await scorer.score(request, time_left=2.0)
    await publisher.drain()
    assert runner.rows == [[1.0, 5.0, 0.0]]
    assert response.score == pytest.approx(0.06)
    assert response.model_version == 3
    assert response.route == inference_pb2.ROUTE_CHAMPION
    assert list(response.missing_features) == ["v:c"]
    assert 29.0 < response.feature_freshness_seconds < 40.0
    assert features.calls[0]["service"] == "fraud_v1"
    assert features.calls[0]["ids"] == {"card": "c-1", "customer": "u-1"}
    assert features.calls[0]["context"]["amount"].double_value == 12.5
    assert 0 < features.calls[0]["t"] <= 2.0
    [(topic, prediction, key, _)] = producer.sent
    assert topic == "preds" and key == "c-1"
    assert isinstance(prediction, inference_events.Prediction)
    assert prediction.event_id == response.event_id
    assert prediction.request_id == "r-1"
    assert dict(prediction.features) == {"v:a": 1.0, "v:b": 5.0, "v:c": 0.0}
    assert dict(prediction.entity_ids) == {"card": "c-1", "customer": "u-1"}


async def test_all_features_inline_skips_the_feature_service() -> None:
    features = FakeFeatures(OnlineFeatures())
    producer = RecordingSender()
    publisher = PredictionPublisher(producer, "preds")
    scorer = Scorer(catalog(), features, FakeRunner(), publisher)
    response = await scorer.score(
        inference_pb2.ScoreRequest(model="fraud", features={"v:a": 1, "v:b": 2, "v:c": 3}), time_left=None
    )
    await publisher.drain()
    assert features.calls == []
    assert response.request_id and response.feature_freshness_seconds == 0.0
    assert producer.sent[0][2] == response.request_id


async def test_no_entity_ids_and_missing_inline_features_is_invalid() -> None:
    scorer = Scorer(
        catalog(), FakeFeatures(OnlineFeatures()), FakeRunner(), PredictionPublisher(RecordingSender(), "p")
    )
    with pytest.raises(InvalidArgument, match="v:b, v:c"):
        await scorer.score(inference_pb2.ScoreRequest(model="fraud", features={"v:a": 1}), time_left=None)


async def test_deadline_spent_in_feature_lookup_is_deadline_exceeded() -> None:
    features = FakeFeatures(OnlineFeatures({"v:a": 1.0}), delay=0.05)
    scorer = Scorer(catalog(), features, FakeRunner(), PredictionPublisher(RecordingSender(), "p"))
    with pytest.raises(DeadlineExceeded, match="before the model call"):
        await scorer.score(inference_pb2.ScoreRequest(model="fraud", entity_ids={"card": "c"}), time_left=0.01)


async def test_publisher_retries_once_then_counts_the_loss() -> None:
    retried = PredictionPublisher(RecordingSender(fail_times=1), "p")
    await retried.submit(inference_events.Prediction(event_id="e1"), key="k")
    assert await retried.drain(1.0) == 0
    assert (retried.published, retried.failed) == (1, 0)

    lost = PredictionPublisher(RecordingSender(fail_times=2), "p")
    await lost.submit(inference_events.Prediction(event_id="e2"), key="k")
    await lost.drain(1.0)
    assert (lost.published, lost.failed) == (0, 1)


async def test_publisher_bounds_in_flight_events() -> None:
    class SlowAcks(RecordingSender):
        def __init__(self) -> None:
            super().__init__()
            self.acks: list[asyncio.Future[Any]] = []

        async def send_event(
            self, topic: str, message: Message, *, key: Any, event_id: Any = None, extra_headers: Any = ()
        ) -> asyncio.Future[Any]:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.acks.append(fut)
            return fut

    producer = SlowAcks()
    publisher = PredictionPublisher(producer, "p", max_in_flight=2)
    await publisher.submit(inference_events.Prediction(event_id="1"), key="k")
    await publisher.submit(inference_events.Prediction(event_id="2"), key="k")
    third = asyncio.create_task(publisher.submit(inference_events.Prediction(event_id="3"), key="k"))
    await asyncio.sleep(0.05)
    assert not third.done() and publisher.in_flight == 2
    producer.acks[0].set_result(None)
    await asyncio.wait_for(third, 1.0)
    for ack in producer.acks[1:]:
        if not ack.done():
            ack.set_result(None)
    await asyncio.sleep(0)
    for ack in producer.acks:
        if not ack.done():
            ack.set_result(None)
    assert await publisher.drain(1.0) == 0
    assert publisher.published == 3
