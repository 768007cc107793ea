"""A run end to end with in-memory fakes of the feature service and Triton: train, export, register, promote;
and the ways a run fails without taking the service down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.sql import create_engine, migrate
from aimesh.training.app import MIGRATIONS
from aimesh.training.deploy import Deployer
from aimesh.training.model import FraudMlp, load_torchscript, predict, save_torchscript
from aimesh.training.outbox import OutboxRelay
from aimesh.training.pipeline import PipelineConfig, TrainingPipeline
from aimesh.training.registry import Registry
from aimesh.training.runs import RunStore
from aimesh.training.worker import RunWorker

from . import synthetic  # type: ignore[attr-defined]
from .fakes import FakeFeatures, FakeModelServer, FakePublisher  # type: ignore[import-not-found]

RUNS, MODELS = "test.runs", "test.models"


@dataclass
class Service:
    worker: RunWorker
    runs: RunStore
    registry: Registry
    publisher: FakePublisher
    features: FakeFeatures
    repo: Path
    lake: Path


async def make_service(tmp_path: Path, *, auc_floor: float = 0.6) -> AsyncIterator[Service]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'training.db'}")
    await migrate(engine, MIGRATIONS)
    publisher, features = FakePublisher(), FakeFeatures()
    runs, registry = RunStore(engine, topic=RUNS), Registry(engine, topic=MODELS)
    relay = OutboxRelay(engine, publisher, interval_s=0.05)
    repo, lake = tmp_path / "models", tmp_path / "lake"
    deployer = Deployer(
        runs=runs, registry=registry, relay=relay, model_server=FakeModelServer(repo), model_repository=repo
    )
    config = PipelineConfig(
        lake_root=lake,
        artifacts_dir=tmp_path / "artifacts",
        default_triton_name="fraud_mlp_test",
        champion_alias="champion",
        champion_auc_floor=auc_floor,
        torch_threads=1,
    )
    pipeline = TrainingPipeline(config, features=features, runs=runs, deployer=deployer)
    worker = RunWorker(runs, pipeline, relay)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(relay.run())
        tg.create_task(worker.run())
        yield Service(worker, runs, registry, publisher, features, repo, lake)
        await worker.stop()
        await relay.stop()
    await engine.dispose()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    async for s in make_service(tmp_path):
        yield s


def spec(**params: str) -> training_pb2.RunSpec:
    return training_pb2.RunSpec(
        model_name="fraud", feature_service="fraud_v1", register_model=True, params={"epochs": "15", **params}
    )


async def finished(runs: RunStore, run_id: str, within: float = 120.0) -> training_pb2.Run:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        run = await runs.get(run_id)
        if run.status in (training_pb2.RUN_STATUS_SUCCEEDED, training_pb2.RUN_STATUS_FAILED):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish within {within}s")


async def test_a_run_trains_registers_exports_and_promotes(service: Service) -> None:
    synthetic.write_lake(service.lake, transactions=2500)
    run = await service.worker.start(spec(), idempotency_key="k1")
    assert (await service.worker.start(spec(), idempotency_key="k1")).run_id == run.run_id
    done = await finished(service.runs, run.run_id)
    assert done.status == training_pb2.RUN_STATUS_SUCCEEDED, done.error_message
    assert done.metrics["auc"] > 0.75
    assert done.metrics["eval_rows"] + done.metrics["train_rows"] > 1000
    assert done.metrics["triton_max_abs_diff"] <= 1e-5
    assert done.model_version == 1 and done.trigger == "manual"
    assert done.start_time.seconds and done.end_time.seconds

    champion = await service.registry.get_alias("fraud", "champion")
    assert champion.version == 1 and list(champion.features) == synthetic.FEATURE_NAMES
    assert sum(champion.reference_profile.fractions) == pytest.approx(1.0)
    assert len(champion.reference_profile.bin_edges) == 11

    version_dir = service.repo / "fraud_mlp_test" / "1"
    assert (version_dir / "model.pt").is_file() and (version_dir / "model.py").is_file()
    config = (service.repo / "fraud_mlp_test" / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "max_batch_size: 256" in config and "dims: [ 5 ]" in config

    await asyncio.sleep(0.2)  # the relay publishes the final RunEvent
    statuses = []
    for value, _ in service.publisher.on(RUNS):
        event = events_pb2.RunEvent()
        event.ParseFromString(value)
        statuses.append(event.status)
    assert statuses == [
        training_pb2.RUN_STATUS_QUEUED,
        training_pb2.RUN_STATUS_RUNNING,
        training_pb2.RUN_STATUS_SUCCEEDED,
    ]
    kinds = []
    for value, _ in service.publisher.on(MODELS):
        model_event = events_pb2.ModelEvent()
        model_event.ParseFromString(value)
        kinds.append(model_event.kind)
    assert kinds == [events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED, events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED]


async def test_a_run_below_the_auc_floor_is_registered_without_alias(tmp_path: Path) -> None:
    async for service in make_service(tmp_path, auc_floor=0.999):
        synthetic.write_lake(service.lake, transactions=1500)
        run = await service.worker.start(spec(epochs="3"))
        done = await finished(service.runs, run.run_id)
        assert done.status == training_pb2.RUN_STATUS_SUCCEEDED, done.error_message
        assert done.model_version == 1
        assert (await service.registry.get_version("fraud", 1)).aliases == []
        await asyncio.sleep(0.2)
        last = events_pb2.RunEvent()
        last.ParseFromString(service.publisher.on(RUNS)[-1][0])
        assert last.status == training_pb2.RUN_STATUS_SUCCEEDED
        assert "registered without alias champion" in last.message and "not above the floor 0.999" in last.message


async def test_failures_end_the_run_failed_with_the_reason(service: Service) -> None:
    empty = await finished(service.runs, (await service.worker.start(spec())).run_id)
    assert empty.status == training_pb2.RUN_STATUS_FAILED
    assert "no data for source 'card_transactions'" in empty.error_message

    synthetic.write_lake(service.lake, transactions=1500)
    service.features.down = True
    down = await finished(service.runs, (await service.worker.start(spec())).run_id)
    assert down.status == training_pb2.RUN_STATUS_FAILED
    assert "feature service at fake:0 is unavailable" in down.error_message

    service.features.down = False
    immature = await finished(service.runs, (await service.worker.start(spec(label_maturity_days="60"))).run_id)
    assert "lower it" in immature.error_message


async def test_invalid_specs_are_rejected_before_queueing(service: Service) -> None:
    with pytest.raises(InvalidArgument, match="feature_service"):
        await service.worker.start(training_pb2.RunSpec(model_name="fraud"))
    with pytest.raises(InvalidArgument, match="unknown keys"):
        await service.worker.start(spec(learning_rat="0.1"))
    with pytest.raises(InvalidArgument, match="triton_model_name"):
        await service.worker.start(spec(triton_model_name="../etc"))


def test_torchscript_export_scores_like_the_module(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = FraudMlp(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 4.0]), (8, 4)).eval()
    x = np.random.default_rng(1).normal(size=(64, 2)).astype(np.float32)
    save_torchscript(module, tmp_path / "model.pt")
    scripted = load_torchscript(tmp_path / "model.pt")
    np.testing.assert_allclose(predict(scripted, x), predict(module, x), atol=1e-6)
    assert predict(scripted, x).min() >= 0.0 and predict(scripted, x).max() <= 1.0
