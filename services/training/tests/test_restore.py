"""The start-up restore against the in-memory model server: it loads every Triton model behind an alias or
a traffic policy's canary / shadow (once), skips unaliased ones, reports missing files, retries while
Triton is down and stops on shutdown."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.sql import create_engine, migrate
from aimesh.training.app import MIGRATIONS
from aimesh.training.registry import NewVersion, Registry
from aimesh.training.restore import AliasedModelLoader

from .fakes import FakeModelServer  # type: ignore[import-not-found]


async def register(registry: Registry, repo: Path, model: str, triton_name: str, *, files: bool = True) -> int:
    async def export(version: int) -> str:
        path = repo / triton_name / str(version) / "model.pt"
        if files:
            path.parent.mkdir(parents=True, exist_ok=True)
            (repo / triton_name / "config.pbtxt").write_text("backend: 'python'\n")
            path.write_bytes(b"torchscript")
        return path.as_uri()

    version, _ = await registry.register(
        NewVersion(
            model_name=model,
            run_id=f"run-{uuid.uuid4().hex}",
            features=["payment:amount"],
            feature_service="fraud_v1",
            metrics={"auc": 0.9},
            reference_profile=training_pb2.ScoreProfile(),
            signature=signature_pb2.ModelSignature(key_entity="card"),
            triton_model_name=triton_name,
        ),
        export,
    )
    return version.version


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'training.db'}")
    await migrate(engine, MIGRATIONS)
    repo = tmp_path / "models"
    reg = Registry(engine, topic="test.models")
    fraud_v1 = await register(reg, repo, "fraud", "fraud_mlp")
    fraud_v2 = await register(reg, repo, "fraud", "fraud_mlp")
    await reg.set_alias("fraud", "champion", fraud_v1, actor="test", reason="")
    await reg.set_alias("fraud", "challenger", fraud_v2, actor="test", reason="")
    await reg.set_alias(
        "retail", "champion", await register(reg, repo, "retail", "retail_mlp"), actor="test", reason=""
    )
    await register(reg, repo, "unaliased", "unaliased_mlp")
    await reg.set_alias("routed", "champion", await register(reg, repo, "routed", "routed_a"), actor="test", reason="")
    canary = await register(reg, repo, "routed", "routed_b")  # a canary on a Triton model of its own
    shadow = await register(reg, repo, "routed", "routed_c")
    await reg.set_traffic_policy(
        training_pb2.TrafficPolicy(
            model_name="routed", canary_version=canary, canary_weight=0.1, shadow_version=shadow, actor="test"
        )
    )
    ghost = await register(reg, repo, "ghost", "ghost_mlp", files=False)
    await reg.set_alias("ghost", "champion", ghost, actor="test", reason="")
    yield reg
    await engine.dispose()


def loader(registry: Registry, server: FakeModelServer) -> AliasedModelLoader:
    return AliasedModelLoader(registry, server, server.repository, first_backoff_s=0.01, max_backoff_s=0.05)


async def test_loads_every_aliased_model_once_and_reports_missing_files(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeModelServer(tmp_path / "models")
    caplog.set_level(logging.INFO, logger="aimesh.training.restore")

    first = loader(registry, server)
    await first.restore()
    assert first.done.is_set()
    assert sorted(server.loaded) == ["fraud_mlp", "retail_mlp", "routed_a", "routed_b", "routed_c"]
    assert await server.is_ready("fraud_mlp", 1) and await server.is_ready("fraud_mlp", 2)
    missing = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [getattr(r, "path", None) for r in missing] == [str(tmp_path / "models" / "ghost_mlp" / "1" / "model.pt")]
    assert sorted(getattr(r, "triton.model") for r in caplog.records if r.msg == "aliased model loaded in Triton") == [
        "fraud_mlp",
        "retail_mlp",
        "routed_a",
        "routed_b",
        "routed_c",
    ]

    await loader(registry, server).restore()  # a second start finds them READY
    assert sorted(server.loaded) == ["fraud_mlp", "retail_mlp", "routed_a", "routed_b", "routed_c"]


async def test_retries_while_triton_is_down_then_loads(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeModelServer(tmp_path / "models")
    server.down = True
    restorer = loader(registry, server)
    running = asyncio.create_task(restorer.run())
    async with asyncio.timeout(5):
        while server.refused_calls < 6:
            await asyncio.sleep(0.01)
    assert not restorer.done.is_set() and server.loaded == []
    retries = [r for r in caplog.records if r.msg.startswith("could not restore")]
    assert len(retries) >= 2 and retries[0].failed == ["fraud_mlp", "retail_mlp", "routed_a", "routed_b", "routed_c"]

    server.down = False
    await asyncio.wait_for(restorer.done.wait(), timeout=5)
    assert sorted(server.loaded) == ["fraud_mlp", "retail_mlp", "routed_a", "routed_b", "routed_c"]
    assert not running.done()  # a part that returns would stop the service
    await restorer.stop()
    await asyncio.wait_for(running, timeout=5)


async def test_stop_ends_a_restore_that_is_still_retrying(registry: Registry, tmp_path: Path) -> None:
    server = FakeModelServer(tmp_path / "models")
    server.down = True
    restorer = loader(registry, server)
    running = asyncio.create_task(restorer.run())
    async with asyncio.timeout(5):
        while server.refused_calls < 2:
            await asyncio.sleep(0.01)
    await restorer.stop()
    await asyncio.wait_for(running, timeout=5)
    assert not restorer.done.is_set() and server.loaded == []
