"""Score during real outages: under a steady Score load (20 calls/s, 1 s deadline each) a private Triton
is killed (-9) and restarted, then the fake feature service is stopped and restarted. The model has a
constant fallback set by a TRAFFIC_POLICY_CHANGED event on the test's registry topic. Every call must be
answered within its deadline (the champion's score or the fallback's constant with ROUTE_FALLBACK; no
DEADLINE_EXCEEDED, no INTERNAL/UNKNOWN), and champion answers must come back within 5 s of each
dependency's return, without a restart. The counts and recovery times are printed."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.devstack.process import stop as stop_process
from aimesh.devstack.triton import Triton
from aimesh.inference.app import wire_inference
from aimesh.inference.settings import InferenceSettings
from tests.integration.test_inference_service import (
    FakeFeatureService,
    _seconds_until_score_ok,
    champion,
    encoded,
    export_model,
    free_port,
    model_signature,
    private_triton,
    registered,
    score_request,
    start_feature_service,
)

__all__ = ["private_triton"]

pytestmark = pytest.mark.integration

CONSTANT = 0.123
DEADLINE_S = 1.0
RATE_PER_S = 20


@dataclass(frozen=True, slots=True)
class Outcome:
    """One Score call of the load: when it was answered, how long it took, its status and route."""

    answered_at: float
    took: float
    code: str
    route: str


class Load:
    """Fires one Score (deadline ``DEADLINE_S``) every 1/``RATE_PER_S`` s without waiting for the previous."""

    def __init__(self, stub: inference_pb2_grpc.InferenceServiceStub, request: inference_pb2.ScoreRequest) -> None:
        self.stub = stub
        self.request = request
        self.outcomes: list[Outcome] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    async def _one(self) -> None:
        started = time.monotonic()
        try:
            answer = await self.stub.Score(self.request, timeout=DEADLINE_S)
            code, route = "OK", inference_pb2.Route.Name(answer.route)
            if answer.route == inference_pb2.ROUTE_FALLBACK:
                assert answer.score == CONSTANT and list(answer.outputs["score"].values) == [CONSTANT]
        except grpc.aio.AioRpcError as exc:
            code, route = exc.code().name, ""
        now = time.monotonic()
        self.outcomes.append(Outcome(now, now - started, code, route))

    async def run(self) -> None:
        while not self._stop.is_set():
            task = asyncio.create_task(self._one())
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            await asyncio.sleep(1 / RATE_PER_S)

    async def stop(self) -> None:
        self._stop.set()
        if self._calls:
            await asyncio.wait(set(self._calls))

    def since(self, at: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.answered_at >= at]

    async def champion_back_after(self, at: float, limit_s: float) -> float:
        """Seconds from ``at`` to the first ROUTE_CHAMPION answer after it (waits up to ``limit_s``)."""
        while time.monotonic() - at < limit_s:
            back = [o for o in self.since(at) if o.route == "ROUTE_CHAMPION"]
            if back:
                return back[0].answered_at - at
            await asyncio.sleep(0.05)
        return float("inf")


def fallback_policy(model: str) -> events_pb2.ModelEvent:
    policy = training_pb2.TrafficPolicy(model_name=model, revision=1)
    policy.fallback.constant_score = CONSTANT
    return events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_TRAFFIC_POLICY_CHANGED, model_name=model, traffic_policy=policy
    )


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(Counter(o.route or o.code for o in outcomes))


async def test_score_answers_the_fallback_within_its_deadline_while_triton_then_features_are_down(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    private_triton: Triton,
    record_property: Callable[[str, object], None],
) -> None:
    triton_name = f"fallback_it_{unique}"
    model = export_model(private_triton.model_repository, triton_name)
    await asyncio.to_thread(private_triton.start)
    await asyncio.to_thread(private_triton.wait_ready, 120)
    fake = FakeFeatureService()
    features = await start_feature_service(fake, 0)
    feature_port: int = features.port  # type: ignore[attr-defined]
    registry = await make_topic("registry", partitions=1)
    settings = InferenceSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-inference-fallback-{unique}",
        topics=[registry],
        predictions_topic=await make_topic("predictions"),
        triton_url=private_triton.grpc_target,
        feature_address=f"127.0.0.1:{feature_port}",
        shutdown_grace_seconds=2.0,
        readiness_interval_seconds=0.5,
        model_reconcile_interval_seconds=0.5,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    await wire_inference(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    name = f"risk_{unique}"
    request = score_request(model=name)
    expected = model.expected(encoded("a-1"))
    load = Load(stub, request)
    loader: asyncio.Task[None] | None = None
    try:
        for event in (registered(name, 1, triton_name, model_signature()), champion(name, 1), fallback_policy(name)):
            await producer.publish(registry, event, key=name)
        await _seconds_until_score_ok(stub, request, limit_s=60, routing=True)
        await asyncio.sleep(1.0)  # the policy event follows the champion's on the one partition
        assert (await stub.Score(request, timeout=DEADLINE_S)).score == pytest.approx(expected, abs=1e-5)
        loader = asyncio.create_task(load.run())
        await asyncio.sleep(2.0)

        triton_down = time.monotonic()
        await asyncio.to_thread(stop_process, private_triton.pidfile, grace=5.0, sig=signal.SIGKILL)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(private_triton.start)
        await asyncio.to_thread(private_triton.wait_ready, 120)
        triton_back = time.monotonic()
        triton_recovery = await load.champion_back_after(triton_back, limit_s=10)
        during_triton = [o for o in load.since(triton_down) if o.answered_at < triton_back]
        await asyncio.sleep(1.0)

        features_down = time.monotonic()
        await features.stop(0)
        await asyncio.sleep(3.0)
        features = await start_feature_service(fake, feature_port)
        features_back = time.monotonic()
        features_recovery = await load.champion_back_after(features_back, limit_s=10)
        during_features = [o for o in load.since(features_down) if o.answered_at < features_back]
        await asyncio.sleep(1.0)
        await load.stop()
        await loader
        loader = None
    finally:
        if loader is not None:
            await load.stop()
            loader.cancel()
        await channel.close()
        runtime.request_stop()
        await asyncio.wait_for(service, 30)
        await features.stop(0)

    outcomes = load.outcomes
    misses = [o for o in outcomes if o.code == "DEADLINE_EXCEEDED" or o.took > DEADLINE_S]
    broken = [o for o in outcomes if o.code in ("INTERNAL", "UNKNOWN")]
    slowest = max(o.took for o in outcomes)
    print(
        f"{len(outcomes)} Score calls at {RATE_PER_S}/s, {DEADLINE_S:g} s deadline: all {counts(outcomes)}; "
        f"Triton down {counts(during_triton)}; feature service down {counts(during_features)}; "
        f"{len(misses)} deadline misses, slowest {slowest * 1000:.0f} ms; champion back {triton_recovery:.2f} s "
        f"after Triton was ready, {features_recovery:.2f} s after the feature service was back"
    )
    record_property("fallback_counts", counts(outcomes))
    record_property("champion_back_after_triton_s", round(triton_recovery, 2))
    record_property("champion_back_after_features_s", round(features_recovery, 2))
    assert not misses and not broken, (misses[:5], broken[:5])
    assert counts(during_triton).get("ROUTE_FALLBACK", 0) >= RATE_PER_S, counts(during_triton)
    assert counts(during_features).get("ROUTE_FALLBACK", 0) >= RATE_PER_S, counts(during_features)
    assert "UNAVAILABLE" not in counts(outcomes), "a model with a fallback is never UNAVAILABLE for an outage"
    assert triton_recovery < 5.0 and features_recovery < 5.0
