"""The rule and previous-version fallbacks, and waiting for the Prediction's acknowledgement, on the real
stack: the real inference service, Kafka and the shared Triton, a fake feature service in process.

The champion (v2) names a Triton model that does not exist, so every call of it fails UNAVAILABLE: with
a previous-version fallback (v1, a loaded model) Score answers what v1 computes with ROUTE_FALLBACK and
v1's number, and its Prediction (route fallback, v1) is on the predictions topic; then a rule fallback
answers the rule's score for the request's context; without a fallback the call is UNAVAILABLE naming
that. The service runs with INFERENCE_PREDICTION_DELIVERY=before_answer: every answer says its
Prediction was ACKNOWLEDGED by Kafka, and the event it names is on the topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.inference.app import wire_inference
from aimesh.inference.settings import InferenceSettings
from tests.integration.test_inference_service import (
    FakeFeatureService,
    Model,
    _find_prediction,
    _score_when_routable,
    champion,
    encoded,
    feature_service,
    free_port,
    model_signature,
    registered,
    score_request,
    triton_model,
)

__all__ = ["feature_service", "triton_model"]

pytestmark = pytest.mark.integration

C = training_pb2.FallbackCondition


def policy_event(model: str, revision: int, fallback: training_pb2.Fallback | None) -> events_pb2.ModelEvent:
    policy = training_pb2.TrafficPolicy(model_name=model, revision=revision, fallback=fallback)
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED, model_name=model, traffic_policy=policy
    )


async def _until(
    stub: inference_pb2_grpc.InferenceServiceStub,
    request: inference_pb2.ScoreRequest,
    done: Callable[[inference_pb2.ScoreResponse], bool],
) -> inference_pb2.ScoreResponse:
    """Score ``request`` until ``done`` holds for the answer (the policy event is applied asynchronously)."""
    deadline = time.monotonic() + 20
    while True:
        answer = await _score_when_routable(stub, request)
        if done(answer) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


async def test_previous_version_and_rule_fallbacks_answer_and_every_prediction_is_acknowledged(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    triton_model: Model,
    feature_service: tuple[str, FakeFeatureService],
) -> None:
    registry = await make_topic("registry", partitions=1)
    predictions = await make_topic("predictions")
    feature_address, _fake = feature_service
    settings = InferenceSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-inference-fallbacks-{unique}",
        topics=[registry],
        predictions_topic=predictions,
        triton_url=endpoints.triton_grpc,
        feature_address=feature_address,
        prediction_delivery="before_answer",
        shutdown_grace_seconds=2.0,
        readiness_interval_seconds=0.5,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    await wire_inference(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    model = f"risk_fb_{unique}"
    previous = training_pb2.Fallback(previous_version=training_pb2.PreviousVersionFallback(version=1))
    try:
        for event in (
            registered(model, 1, triton_model.name, model_signature()),
            registered(model, 2, f"absent_{unique}", model_signature()),
            champion(model, 2),
            policy_event(model, 1, previous),
        ):
            await producer.publish(registry, event, key=model)

        answer = await _until(stub, score_request(model=model), lambda a: a.route == inference_pb2.ROUTE_FALLBACK)
        assert (answer.route, answer.model_version) == (inference_pb2.ROUTE_FALLBACK, 1), answer
        assert answer.score == pytest.approx(triton_model.expected(encoded("a-1")), abs=1e-5), "v1's maths"
        assert answer.prediction_delivery == inference_pb2.PREDICTION_DELIVERY_ACKNOWLEDGED and answer.event_id
        prediction, _key = await _find_prediction(endpoints.kafka_bootstrap, predictions, answer.event_id)
        assert (prediction.route, prediction.model_version) == (inference_pb2.ROUTE_FALLBACK, 1)
        assert prediction.score == pytest.approx(answer.score)

        rule = training_pb2.FallbackRule(
            conditions=[C(field="context.amount", op=C.OP_GT, number=100.0, score=0.9)], default_score=0.2
        )
        await producer.publish(registry, policy_event(model, 2, training_pb2.Fallback(rule=rule)), key=model)
        small = await _until(stub, score_request(model=model), lambda a: a.model_version == 2)
        assert (small.route, small.model_version, small.score) == (inference_pb2.ROUTE_FALLBACK, 2, 0.2)
        big = score_request(model=model)
        big.context["amount"].double_value = 500.0
        answered = await stub.Score(big, timeout=5)
        assert (answered.route, answered.score) == (inference_pb2.ROUTE_FALLBACK, 0.9)
        assert answered.prediction_delivery == inference_pb2.PREDICTION_DELIVERY_ACKNOWLEDGED
        ruled, _key = await _find_prediction(endpoints.kafka_bootstrap, predictions, answered.event_id)
        assert (ruled.route, ruled.score) == (inference_pb2.ROUTE_FALLBACK, 0.9)

        await producer.publish(registry, policy_event(model, 3, None), key=model)
        deadline = time.monotonic() + 20
        while True:
            try:
                await stub.Score(score_request(model=model), timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                assert "(the model has no fallback)" in (exc.details() or "")
                break
            assert time.monotonic() < deadline, "the policy without a fallback was never applied"
            await asyncio.sleep(0.1)
    finally:
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)
