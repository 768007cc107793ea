"""The Go inference client (tests/clients/go) against a real grpc.aio InferenceService on loopback.

The binary is built once per session with ``go build`` (a missing Go toolchain fails the test, never
skips it); the server is aimesh.core's GrpcServer with a fake servicer, so the whole gRPC path is real:
Go protobuf encoding of both requests, the bearer token, deadlines, status codes and messages mapped
by the error interceptor. The Go client against the real mesh (the banking model's scores, Recommend
equal to the Python client's) is in tests/e2e/test_fraud_scenario.py.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.channels import TOKEN_FILE_ENV
from aimesh.core.errors import InvalidArgument
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.settings import ServiceSettings
from tests.clients.go_client import (
    MODULE,
    GoClientUnavailable,
    build_go_client,
    go_command,
    go_env,
    go_recommend,
    go_score,
    run_go_client,
)

pytestmark = pytest.mark.integration

SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
TOKEN = "go-client-test-token"  # the fake checks that it arrives


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    """Score: amount / 1000; Recommend: the context items reversed, then "i-<n>" fillers, minus exclusions.
    Keeps each request with the authorization metadata it came with."""

    def __init__(self) -> None:
        self.received: list[tuple[object, str | None]] = []

    def _keep(self, request: object, context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        self.received.append((request, metadata.get("authorization")))

    async def Score(
        self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreResponse:
        self._keep(request, context)
        if request.request_id == "slow":
            await asyncio.sleep(5)
        amount = request.context["amount"]
        if amount.WhichOneof("kind") != "double_value" or amount.double_value <= 0:
            raise InvalidArgument(f"context.amount: must be a positive number, got {amount}")
        return inference_pb2.ScoreResponse(
            request_id=request.request_id,
            score=amount.double_value / 1000,
            model_name=request.model,
            model_version=request.version if request.HasField("version") else 7,
            route=inference_pb2.ROUTE_PINNED if request.HasField("version") else inference_pb2.ROUTE_CHAMPION,
            feature_freshness_seconds=1.25,
            missing_features=["card_stats:amount_24h"],
            event_id=f"pred-{request.request_id}",
            outputs={"score": inference_pb2.OutputValues(values=[amount.double_value / 1000])},
        )

    async def Recommend(
        self, request: inference_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.RecommendResponse:
        self._keep(request, context)
        k = request.k or 10
        if k > 50:
            raise InvalidArgument(f"k: {k} is outside [1, max_k = 50]")
        known = [i for i in request.context_items if i.startswith("i-")]
        ranked = [*reversed(known), *(f"i-{n}" for n in range(100))]
        chosen = [i for i in dict.fromkeys(ranked) if i not in set(request.exclude_items)][:k]
        return inference_pb2.RecommendResponse(
            request_id=request.request_id,
            model_name=request.model,
            model_version=3,
            route=inference_pb2.ROUTE_CHAMPION if known else inference_pb2.ROUTE_FALLBACK,
            items=[inference_pb2.RecommendedItem(item_id=i, score=1 / (n + 3)) for n, i in enumerate(chosen)],
            fallback=not known,
            unknown_items=[i for i in request.context_items if not i.startswith("i-")],
            max_k=50,
            event_id=f"pred-{request.request_id}",
        )


@pytest.fixture(scope="session")
def go_client() -> Path:
    try:
        return build_go_client()
    except GoClientUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
async def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeInference, str]]:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    monkeypatch.setenv(TOKEN_FILE_ENV, str(token_file))  # run_go_client passes it as --token-file
    servicer = FakeInference()
    server = GrpcServer(
        # the fake checks the token arrives; verifying one is the auth interceptor's job (test_grpc_auth.py)
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


def test_go_unit_tests_pass() -> None:
    """``go vet`` and ``go test`` of the client's flag parsing and output encoding."""
    try:
        go = go_command()
    except GoClientUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    for command in ([go, "vet", "./..."], [go, "test", "-count=1", "./..."]):
        result = subprocess.run(
            command, check=False, cwd=MODULE, env=go_env(), capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{' '.join(command[1:])}:\n{result.stdout}\n{result.stderr}"


async def test_score_sends_every_flag_and_prints_the_answer(go_client: Path, fake: tuple[FakeInference, str]) -> None:
    servicer, target = fake
    context = {"amount": 250, "country": "DE", "timestamp": "2025-03-01T12:00:00Z", "new_device": True, "x": None}

    line = await asyncio.to_thread(
        go_score,
        go_client,
        target,
        "fraud",
        {"card": "c-1", "customer": "u-9"},
        context,
        features={"amount_24h": 0.1},
        request_id="r-1",
    )

    assert line["status"] == "OK", line
    assert (line["request_id"], line["model_name"], line["model_version"], line["route"]) == (
        "r-1",
        "fraud",
        7,
        "ROUTE_CHAMPION",
    )
    assert line["score"] == 0.25 and line["outputs"] == {"score": [0.25]}
    assert line["feature_freshness_seconds"] == 1.25 and line["missing_features"] == ["card_stats:amount_24h"]
    assert line["event_id"] == "pred-r-1" and line["latency_ms"] > 0
    request, authorization = servicer.received[0]
    assert isinstance(request, inference_pb2.ScoreRequest)
    assert authorization == f"Bearer {TOKEN}"
    assert request.model == "fraud" and not request.HasField("alias") and not request.HasField("version")
    assert dict(request.entity_ids) == {"card": "c-1", "customer": "u-9"}
    assert dict(request.features) == {"amount_24h": 0.1}
    assert request.context["amount"].double_value == 250.0
    assert request.context["country"].string_value == "DE"
    assert request.context["timestamp"].string_value == "2025-03-01T12:00:00Z"
    assert request.context["new_device"].bool_value is True
    assert request.context["x"].WhichOneof("kind") is None


async def test_score_pins_a_version(go_client: Path, fake: tuple[FakeInference, str]) -> None:
    servicer, target = fake
    line = await asyncio.to_thread(go_score, go_client, target, "fraud", {"card": "c-1"}, {"amount": 1}, version=4)
    assert (line["model_version"], line["route"]) == (4, "ROUTE_PINNED")
    request, _ = servicer.received[0]
    assert isinstance(request, inference_pb2.ScoreRequest) and request.version == 4


async def test_recommend_sends_every_flag_and_prints_the_answer(
    go_client: Path, fake: tuple[FakeInference, str]
) -> None:
    servicer, target = fake

    line = await asyncio.to_thread(
        go_recommend,
        go_client,
        target,
        "next_item",
        {"user": "u-1"},
        ["i-7", "not-an-item", "i-3"],
        k=4,
        exclude=["i-0", "i-7"],
        request_id="rec-1",
        alias="canary",
    )

    assert line["status"] == "OK", line
    assert [item["item_id"] for item in line["items"]] == ["i-3", "i-1", "i-2", "i-4"]
    assert [item["score"] for item in line["items"]] == [1 / 3, 1 / 4, 1 / 5, 1 / 6]
    assert (line["request_id"], line["model_name"], line["model_version"], line["route"]) == (
        "rec-1",
        "next_item",
        3,
        "ROUTE_CHAMPION",
    )
    assert (line["fallback"], line["unknown_items"], line["max_k"]) == (False, ["not-an-item"], 50)
    assert line["event_id"] == "pred-rec-1"
    request, authorization = servicer.received[0]
    assert isinstance(request, inference_pb2.RecommendRequest)
    assert authorization == f"Bearer {TOKEN}"
    assert (request.model, request.alias, request.k) == ("next_item", "canary", 4)
    assert dict(request.entity_ids) == {"user": "u-1"}
    assert list(request.context_items) == ["i-7", "not-an-item", "i-3"]
    assert list(request.exclude_items) == ["i-0", "i-7"]


async def test_recommend_fallback_without_k_or_context(go_client: Path, fake: tuple[FakeInference, str]) -> None:
    servicer, target = fake
    line = await asyncio.to_thread(go_recommend, go_client, target, "next_item", {"user": "new"})
    assert (line["route"], line["fallback"], len(line["items"]), line["unknown_items"]) == (
        "ROUTE_FALLBACK",
        True,
        10,
        [],
    )
    request, _ = servicer.received[0]
    assert isinstance(request, inference_pb2.RecommendRequest) and request.k == 0 and not request.context_items


async def test_grpc_errors_are_reported_by_status_name(go_client: Path, fake: tuple[FakeInference, str]) -> None:
    _, target = fake

    invalid = await asyncio.to_thread(go_score, go_client, target, "fraud", {"card": "c-1"}, {"amount": -5})
    too_many = await asyncio.to_thread(go_recommend, go_client, target, "next_item", {"user": "u"}, k=51)
    slow = await asyncio.to_thread(
        go_score, go_client, target, "fraud", {"card": "c-1"}, {"amount": 1}, request_id="slow", deadline_ms=300
    )

    assert invalid["status"] == "INVALID_ARGUMENT"
    assert "context.amount: must be a positive number" in invalid["message"]
    assert too_many["status"] == "INVALID_ARGUMENT" and "outside [1, max_k = 50]" in too_many["message"]
    assert slow["status"] == "DEADLINE_EXCEEDED"
    assert 300 <= slow["latency_ms"] < 3000


async def test_unreachable_server_is_unavailable(go_client: Path, unused_tcp_port: int) -> None:
    line = await asyncio.to_thread(go_score, go_client, f"127.0.0.1:{unused_tcp_port}", "fraud", {"card": "c-1"})
    assert line["status"] == "UNAVAILABLE"
    assert "connection refused" in line["message"].lower()


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["score", "--target", "127.0.0.1:1"], "--model is required"),
        (["recommend", "--model", "m", "--k", "x"], 'invalid value "x" for flag -k'),
        (["recommend", "--model", "m", "--context-json", "{}"], "--context-json is not a flag of recommend"),
    ],
)
def test_bad_flags_exit_2_without_a_call(go_client: Path, args: list[str], stderr: str) -> None:
    with pytest.raises(subprocess.CalledProcessError) as raised:
        run_go_client(go_client, args)
    assert raised.value.returncode == 2
    assert stderr in raised.value.stderr and "usage:" in raised.value.stderr
    assert raised.value.stdout == ""
