"""The Go client's Recommend equals the Python client's against the real inference service and Triton.

The served model is the TASK_NEXT_ITEM model of tests/integration/test_inference_recommend.py (exported
through the training export code, top-k inside the model, histories from its fake FeatureService); this
test reuses its fixtures and registry events and compares both clients with
``tests.clients.go_client.compare_recommend``: entities with history, with unknown history elements,
without history (the popular fallback), with context items, exclusions, k, an unknown context item, and
each of the error statuses (k above max_k, an unknown model, a missing entity id).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.inference.app import wire_inference
from aimesh.inference.settings import InferenceSettings
from tests.clients.go_client import (
    GoClientUnavailable,
    RecommendCase,
    build_go_client,
    compare_recommend,
    default_cases,
)
from tests.integration import next_item_model
from tests.integration.test_inference_recommend import (  # exported, feature_service: fixtures
    MAX_K,
    champion,
    exported,  # noqa: F401
    feature_service,  # noqa: F401
    next_item_signature,
    registered,
)
from tests.integration.test_inference_service import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def go_client() -> Path:
    try:
        return build_go_client()
    except GoClientUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
async def served(
    endpoints: Any,
    make_topic: Callable[..., Any],
    unique: str,
    exported: tuple[str, next_item_model.TinyNextItem],  # noqa: F811
    feature_service: tuple[str, Any],  # noqa: F811
) -> AsyncIterator[tuple[str, str]]:
    """The inference service on a free port, serving ``next_go_<unique>`` v1 as champion: (address, model)."""
    triton_name, _ = exported
    registry = await make_topic("registry", partitions=1)
    settings = InferenceSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        grpc_port=free_port(),
        admin_port=free_port(),
        consumer_group=f"it-inference-go-{unique}",
        topics=[registry],
        predictions_topic=await make_topic("predictions"),
        triton_url=endpoints.triton_grpc,
        feature_address=feature_service[0],
        shutdown_grace_seconds=2.0,
        readiness_interval_seconds=0.5,
        ship_logs=False,
    )
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    await wire_inference(settings, runtime, producer)
    service = asyncio.create_task(runtime.run())
    model = f"next_go_{unique}"
    address = f"127.0.0.1:{settings.grpc_port}"
    try:
        for event in (registered(model, 1, triton_name, next_item_signature()), champion(model, 1)):
            await producer.publish(registry, event, key=event.model_name)
        await _until_served(address, model)
        yield address, model
    finally:
        runtime.request_stop()
        await asyncio.wait_for(service, 30)


async def _until_served(address: str, model: str, limit_s: float = 30) -> None:
    async with open_caller_channel(address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.RecommendRequest(model=model, entity_ids={"member": "m-1"})
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            try:
                await stub.Recommend(request, timeout=5)
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def test_go_recommend_equals_python_recommend(go_client: Path, served: tuple[str, str]) -> None:
    address, model = served
    member = "member"
    cases = [
        RecommendCase({member: "m-1"}),
        RecommendCase({member: "m-1"}, context_items=["p-012", "zz-new", "p-013"], k=8, exclude=["p-004", "p-020"]),
        RecommendCase({member: "m-2"}, k=MAX_K),
        RecommendCase({member: "cold"}, context_items=["zz-x"], k=3, exclude=["p-003"]),
        RecommendCase({member: "empty"}),
        RecommendCase({member: "cold"}, context_items=["p-030"], k=3),
        RecommendCase({member: "m-1"}, k=MAX_K + 1),  # INVALID_ARGUMENT on both
        RecommendCase({"other": "x"}),  # INVALID_ARGUMENT: entity_ids['member'] is missing
        *await default_cases(address, model),
    ]

    compared = await compare_recommend(go_client, address, model, cases)
    compared += await compare_recommend(go_client, address, f"nope_{model}", [RecommendCase({member: "m-1"})])

    problems = [p for c in compared for p in c.problems]
    assert not problems, "\n".join(problems)
    seen = [(c.python["status"], c.python.get("route")) for c in compared]
    assert ("OK", "ROUTE_CHAMPION") in seen and ("OK", "ROUTE_FALLBACK") in seen, seen
    assert ("INVALID_ARGUMENT", None) in seen and ("NOT_FOUND", None) in seen, seen
    assert sum(len(c.go.get("items") or []) for c in compared) > 50, "the model answered items to compare"
