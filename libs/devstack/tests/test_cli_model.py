"""`aimesh model traffic | policy | promote | rollback` against an in-process TrainingService (gRPC on
127.0.0.1 in a thread of its own, SQLite registry with three versions of ``m``, champion v1, no Kafka):
what each command prints, that options not given keep the current split and fallback, and one-line errors
for a refused policy, nothing to promote, an unknown model and an unreachable service."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.sql import create_engine, migrate
from aimesh.devstack.cli import app
from aimesh.devstack.errors import DevstackError
from aimesh.training.api import TrainingServiceApi
from aimesh.training.app import MIGRATIONS, SERVICE_NAME
from aimesh.training.registry import NewVersion, Registry
from aimesh.training.settings import TrainingSettings


class NoRelay:
    """The deployer's part the registry RPCs use: events stay in the outbox (no Kafka here)."""

    async def publish_pending(self) -> None:
        return None


@pytest.fixture
def training_address(tmp_path: Path) -> Iterator[str]:
    """A TrainingService on a free port, served by an event loop in its own thread until the test ends."""
    ready = threading.Event()
    address: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def export(version: int) -> str:
        return f"file:///repo/m/{version}/model.pt"

    async def serve() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'training.db'}")
        await migrate(engine, MIGRATIONS)
        registry = Registry(engine, topic="registry")
        for run in ("a", "b", "c"):
            await registry.register(
                NewVersion(
                    model_name="m",
                    run_id=run,
                    features=["x"],
                    feature_service="fs",
                    metrics={},
                    reference_profile=training_pb2.ScoreProfile(),
                    triton_model_name="m",
                    signature=signature_pb2.ModelSignature(),
                ),
                export,
            )
        await registry.set_alias("m", "champion", 1, actor="test", reason="first")
        nothing = cast(Any, None)
        api = TrainingServiceApi(worker=nothing, runs=nothing, registry=registry, deployer=cast(Any, NoRelay()))
        server = GrpcServer(
            TrainingSettings(data_dir=tmp_path, grpc_port=0),
            [lambda s: training_pb2_grpc.add_TrainingServiceServicer_to_server(api, s)],
            [SERVICE_NAME],
        )
        await server.server.start()
        address.append(f"127.0.0.1:{server.port}")
        ready.set()
        await stop.wait()
        await server.server.stop(0)
        await engine.dispose()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the in-process training service did not start"
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def model(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["model", *args])
    return result.exit_code, " ".join(result.output.split()), result.exception


def test_traffic_policy_promote_and_rollback_print_what_they_recorded(training_address: str) -> None:
    at = ("--address", training_address)
    code, out, _ = model("traffic", "m", "--canary-version", "2", "--canary-weight", "0.1", "--actor", "ann", *at)
    assert code == 0 and out.startswith("set m: canary v2 at 0.1 of key entities (revision 1 by ann at "), out
    code, out, _ = model("traffic", "m", "--canary-weight", "0.1", "--actor", "bob", *at)
    assert code == 0 and out.startswith("unchanged m: canary v2 at 0.1 of key entities (revision 1 by ann"), out
    code, out, _ = model("traffic", "m", "--shadow-version", "3", "--shadow-share", "0.5", "--reason", "try v3", *at)
    assert code == 0 and "canary v2 at 0.1 of key entities, shadow v3 mirroring 0.5 of requests (revision 2" in out
    assert out.endswith(": try v3)"), out

    code, out, _ = model("policy", "m", *at)
    assert code == 0 and out.startswith("m@champion: v1 traffic: canary v2 at 0.1 of key entities, shadow v3"), out
    assert "│ 2 │ v2 │ 0.1 │ v3 │ 0.5 │ - │" in out and "│ 1 │ v2 │ 0.1 │ - │ 0 │ - │ ann │" in out, out

    code, out, _ = model("promote", "m", "--actor", "cat", "--reason", "v2 wins", *at)
    assert code == 0 and out.startswith("promoted m@champion: v1 -> v2; traffic: shadow v3 mirroring 0.5"), out
    assert "(revision 3 by cat at " in out
    code, out, _ = model("rollback", "m", "--actor", "dan", *at)
    assert code == 0 and out.startswith("rolled back m: champion only (revision 4 by dan at "), out
    code, out, _ = model("rollback", "m", "--actor", "dan", *at)
    assert code == 0 and "(revision 4 by dan" in out  # nothing left to roll back: no new revision
    code, out, _ = model("policy", "m", *at)
    assert code == 0 and out.startswith("m@champion: v2 traffic: champion only (revision 4"), out


def test_refusals_and_a_missing_service_are_one_line_errors(training_address: str) -> None:
    at = ("--address", training_address)
    _, _, refused = model("traffic", "m", "--canary-version", "2", "--canary-weight", "1.5", *at)
    assert isinstance(refused, DevstackError) and "INVALID_ARGUMENT: policy.canary_weight must be in [0, 1]" in str(
        refused
    )
    _, _, champion = model("traffic", "m", "--canary-version", "1", "--canary-weight", "0.2", *at)
    assert isinstance(champion, DevstackError) and "is the champion version" in str(champion)
    _, _, nothing = model("promote", "m", *at)
    assert isinstance(nothing, DevstackError) and "FAILED_PRECONDITION" in str(nothing)
    assert "aimesh model policy m" in str(nothing)
    _, _, unknown = model("policy", "nope", *at)
    assert isinstance(unknown, DevstackError) and "NOT_FOUND: model 'nope' does not exist" in str(unknown)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    _, _, down = model("rollback", "m", "--address", f"127.0.0.1:{closed}")
    assert isinstance(down, DevstackError) and "UNAVAILABLE" in str(down) and "aimesh up --only training" in str(down)


def test_fallback_score_is_set_kept_shown_and_dropped(training_address: str) -> None:
    at = ("--address", training_address)
    code, out, _ = model(
        "traffic", "m", "--canary-version", "2", "--canary-weight", "0.1", "--fallback-score", "0.5", *at
    )
    assert code == 0 and out.startswith("set m: canary v2 at 0.1 of key entities, fallback constant 0.5 (revision 1"), (
        out
    )
    code, out, _ = model("traffic", "m", "--canary-weight", "0.2", *at)
    assert code == 0 and out.startswith("set m: canary v2 at 0.2 of key entities, fallback constant 0.5 (revision 2"), (
        out
    )
    code, out, _ = model("traffic", "m", "--fallback-score", "0.5", *at)
    assert code == 0 and out.startswith("unchanged m:"), out
    code, out, _ = model("traffic", "m", "--no-fallback", *at)
    assert code == 0 and out.startswith("set m: canary v2 at 0.2 of key entities (revision 3"), out

    code, out, _ = model("policy", "m", *at)
    assert code == 0 and out.startswith("m@champion: v1 traffic: canary v2 at 0.2 of key entities (revision 3"), out
    assert "│ 3 │ v2 │ 0.2 │ - │ 0 │ - │" in out and "│ 2 │ v2 │ 0.2 │ - │ 0 │ constant 0.5 │" in out, out

    _, _, refused = model("traffic", "m", "--fallback-score", "nan", *at)
    assert isinstance(refused, DevstackError) and "INVALID_ARGUMENT: policy.fallback.constant_score" in str(refused)
    _, _, both = model("traffic", "m", "--fallback-score", "1", "--no-fallback", *at)
    assert isinstance(both, DevstackError) and "contradict" in str(both)
    _, _, two = model("traffic", "m", "--fallback-score", "1", "--fallback-version", "2", *at)
    assert isinstance(two, DevstackError) and "--fallback-score and --fallback-version contradict" in str(two)


def test_rule_and_version_fallbacks_are_set_and_shown(training_address: str, tmp_path: Path) -> None:
    at = ("--address", training_address)
    rule = (
        '{"conditions": [{"field": "context.amount", "op": "OP_GT", "number": 1000, "score": 0.9}], '
        '"default_score": 0.1}'
    )
    code, out, _ = model("traffic", "m", "--fallback-rule", rule, *at)
    assert code == 0 and out.startswith(
        "set m: champion only, fallback rule: context.amount > 1000 -> 0.9; else 0.1"
    ), out
    spec = tmp_path / "rule.json"
    spec.write_text('{"default_score": 0.2}', encoding="utf-8")
    code, out, _ = model("traffic", "m", "--fallback-rule", f"@{spec}", *at)
    assert code == 0 and "fallback rule: else 0.2 (revision" in out, out
    code, out, _ = model("traffic", "m", "--fallback-version", "2", *at)
    assert code == 0 and "fallback previous version 2 (revision" in out, out
    _, _, champion = model("traffic", "m", "--fallback-version", "1", *at)
    assert isinstance(champion, DevstackError) and "policy.fallback.previous_version.version 1 is the champion" in str(
        champion
    )
    _, _, bad = model("traffic", "m", "--fallback-rule", '{"conditions": "x"}', *at)
    assert isinstance(bad, DevstackError) and "--fallback-rule is not a FallbackRule" in str(bad)
    _, _, op = model("traffic", "m", "--fallback-rule", '{"conditions": [{"field": "context.a", "number": 1}]}', *at)
    assert isinstance(op, DevstackError) and "policy.fallback.rule.conditions[0].op is OP_UNSPECIFIED" in str(op)
