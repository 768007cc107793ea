"""The Java bank client (tests/clients/java) against a real grpc.aio InferenceService on loopback.

The jar is built once per session with Maven (a missing JDK or Maven fails the test, never skips it);
the server is aimesh.core's GrpcServer with a fake servicer, so the whole gRPC path is real: Java
protobuf encoding, deadlines, status codes and messages mapped by the error interceptor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.errors import InvalidArgument
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.settings import ServiceSettings
from tests.clients.java_client import JavaClientUnavailable, build_java_client, run_java_client

pytestmark = pytest.mark.integration

SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    """Scores amount / 1000, echoes the request; keeps what it received."""

    def __init__(self) -> None:
        self.received: list[inference_pb2.ScoreRequest] = []

    async def Score(
        self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreResponse:
        self.received.append(request)
        if request.request_id == "slow":
            await asyncio.sleep(5)
        amount = request.context["amount"]
        if amount.WhichOneof("kind") != "double_value" or amount.double_value <= 0:
            raise InvalidArgument(f"context.amount: must be a positive number, got {amount}")
        return inference_pb2.ScoreResponse(
            request_id=request.request_id,
            score=amount.double_value / 1000,
            model_name=request.model,
            model_version=7,
            route=inference_pb2.ROUTE_CHAMPION,
            event_id=f"pred-{request.request_id}",
        )


@pytest.fixture(scope="session")
def java_client() -> Path:
    try:
        return build_java_client()
    except JavaClientUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeInference, str]]:
    servicer = FakeInference()
    server = GrpcServer(
        # the Java client sends no bearer token: this fake serves without auth
        ServiceSettings(grpc_host="127.0.0.1", grpc_port=0, shutdown_grace_seconds=1, auth_enabled=False),
        [lambda s: inference_pb2_grpc.add_InferenceServiceServicer_to_server(servicer, s)],
        [SERVICE],
    )
    task = asyncio.create_task(server.serve())
    try:
        yield servicer, f"127.0.0.1:{server.port}"
    finally:
        await server.stop()
        await task


def payment(request_id: str, amount: Any, card: str = "c-1") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "card_id": card,
        "customer_id": "u-9",
        "amount": amount,
        "merchant_id": "m-3",
        "merchant_category": "crypto",
        "country": "DE",
        "device_id": "d-5",
        "timestamp": "2025-03-01T12:00:00Z",
    }


async def test_scores_each_payment_in_order(java_client: Path, fake: tuple[FakeInference, str]) -> None:
    servicer, target = fake
    requests = [payment("r-1", 100.0, card="c-1"), payment("r-2", 250, card="c-2"), payment("r-3", 999.5)]

    lines = await asyncio.to_thread(run_java_client, java_client, target, requests)

    assert [(line["request_id"], line["status"]) for line in lines] == [("r-1", "OK"), ("r-2", "OK"), ("r-3", "OK")]
    assert [line["score"] for line in lines] == pytest.approx([0.1, 0.25, 0.9995])
    assert {(line["model_name"], line["model_version"], line["route"]) for line in lines} == {
        ("fraud", 7, "ROUTE_CHAMPION")
    }
    assert lines[0]["event_id"] == "pred-r-1"
    first = servicer.received[0]
    assert first.model == "fraud"
    assert dict(first.entity_ids) == {"card": "c-1", "customer": "u-9"}
    assert first.context["amount"].double_value == 100.0
    assert first.context["timestamp"].string_value == "2025-03-01T12:00:00Z"
    assert {k: v.string_value for k, v in first.context.items() if k != "amount"} == {
        "merchant_id": "m-3",
        "merchant_category": "crypto",
        "country": "DE",
        "device_id": "d-5",
        "timestamp": "2025-03-01T12:00:00Z",
    }
    assert servicer.received[1].entity_ids["card"] == "c-2"


async def test_errors_are_reported_per_line_and_do_not_stop_the_stream(
    java_client: Path, fake: tuple[FakeInference, str]
) -> None:
    _, target = fake
    requests = [payment("bad", -5), {"request_id": "shape", "card_id": ["c-1"]}, payment("slow", 1), payment("ok", 42)]

    # 2 s: the first call also pays for the JVM's channel set-up; the "slow" request sleeps 5 s.
    lines = await asyncio.to_thread(run_java_client, java_client, target, requests, deadline_ms=2000)

    assert [(line["request_id"], line["status"]) for line in lines] == [
        ("bad", "INVALID_ARGUMENT"),
        ("shape", "INVALID_INPUT"),
        ("slow", "DEADLINE_EXCEEDED"),
        ("ok", "OK"),
    ]
    assert "context.amount: must be a positive number" in lines[0]["message"]
    assert "card_id: must be a string" in lines[1]["message"]
    assert lines[3]["score"] == pytest.approx(0.042)


async def test_unreachable_server_is_unavailable(java_client: Path, unused_tcp_port: int) -> None:
    lines = await asyncio.to_thread(
        run_java_client, java_client, f"127.0.0.1:{unused_tcp_port}", [payment("r-1", 10), payment("r-2", 20)]
    )

    assert [(line["request_id"], line["status"]) for line in lines] == [("r-1", "UNAVAILABLE"), ("r-2", "UNAVAILABLE")]
    assert "Connection refused" in lines[0]["message"]
