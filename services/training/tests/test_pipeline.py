"""A run end to end with in-memory fakes of the feature service and Triton: train, export, register, promote;
and the ways a run fails without taking the service down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from google.protobuf.duration_pb2 import Duration

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound
from aimesh.core.sql import create_engine, migrate
from aimesh.training.app import MIGRATIONS
from aimesh.training.deploy import Deployer
from aimesh.training.model import load_torchscript, predict, save_torchscript
from aimesh.training.outbox import OutboxRelay
from aimesh.training.paging import Page
from aimesh.training.pipeline import PipelineConfig, TrainingPipeline
from aimesh.training.registry import Registry
from aimesh.training.runs import RunStore
from aimesh.training.trainers.tabular import BinaryClassifier, TabularEncoder, mlp
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
    features: Any
    repo: Path
    lake: Path


async def make_service(tmp_path: Path, *, auc_floor: float = 0.6, features: Any = None) -> AsyncIterator[Service]:
    """The service over SQLite and the fakes; ``features``: the feature client (default ``FakeFeatures()``)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'training.db'}")
    await migrate(engine, MIGRATIONS)
    publisher, features = FakePublisher(), features or FakeFeatures()
    runs, registry = RunStore(engine, topic=RUNS), Registry(engine, topic=MODELS)
    relay = OutboxRelay(engine, publisher, interval_s=0.05)
    repo, lake = tmp_path / "models", tmp_path / "lake"
    deployer = Deployer(
        runs=runs, registry=registry, relay=relay, model_server=FakeModelServer(repo), model_repository=repo
    )
    config = PipelineConfig(
        lake_root=lake,
        artifacts_dir=tmp_path / "artifacts",
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


def spec(trainer: str = "mlp_classifier", maturity_days: int = 10, **params: str) -> training_pb2.RunSpec:
    """The toy lake's use case as a generic spec: rows from card_transactions, label from chargebacks."""
    return training_pb2.RunSpec(
        model_name="toy",
        feature_service="toy_v1",
        trainer=trainer,
        register_model=True,
        params={"epochs": "15", **params},
        rows=training_pb2.TrainingRows(
            source="card_transactions",
            entity_fields={"entity_key": "card", "customer_id": "customer"},
            context_fields=["amount", "merchant_category", "country", "merchant_id"],
            key_entity="card",
        ),
        label=training_pb2.LabelSpec(
            source="chargebacks",
            join_field="transaction_id",
            target_field="reason",
            kind=training_pb2.LABEL_KIND_BINARY,
            positive_values=["fraud"],
            maturity=Duration(seconds=maturity_days * 86400),
        ),
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

    champion = await service.registry.get_alias("toy", "champion")
    assert champion.version == 1 and list(champion.features) == synthetic.FEATURE_NAMES
    signature = champion.signature
    assert [i.name for i in signature.inputs] == synthetic.FEATURE_NAMES
    category = signature.inputs[1]
    assert category.kind == signature_pb2.INPUT_KIND_CATEGORICAL and set(category.vocabulary) >= set(synthetic.RISKY)
    assert signature.inputs[0].kind == signature_pb2.INPUT_KIND_NUMERIC
    assert signature.entity_types == ["card", "customer"] and signature.key_entity == "card"
    assert [(f.name, f.type) for f in signature.context_fields][:2] == [("amount", 1), ("merchant_category", 3)]
    assert signature.outputs[0].name == "score" and signature.trainer == "mlp_classifier"
    assert sum(champion.reference_profile.fractions) == pytest.approx(1.0)
    assert len(champion.reference_profile.bin_edges) == 11
    profiles = {p.feature: p for p in champion.input_profiles}
    assert list(profiles) == synthetic.FEATURE_NAMES  # every input is numeric or categorical
    assert profiles[category.name].kind == signature_pb2.INPUT_KIND_CATEGORICAL
    assert set(profiles[category.name].categories) <= set(category.vocabulary)
    numeric = profiles[signature.inputs[0].name]
    assert numeric.kind == signature_pb2.INPUT_KIND_NUMERIC and len(numeric.bin_edges) >= 2
    for profile in profiles.values():
        assert sum(profile.fractions) == pytest.approx(1.0) and 0 < profile.count <= done.metrics["eval_rows"]

    version_dir = service.repo / "toy" / "1"
    assert (version_dir / "model.pt").is_file() and (version_dir / "model.py").is_file()
    config = (service.repo / "toy" / "config.pbtxt").read_text()
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
        assert (await service.registry.get_version("toy", 1)).aliases == []
        await asyncio.sleep(0.2)
        last = events_pb2.RunEvent()
        last.ParseFromString(service.publisher.on(RUNS)[-1][0])
        assert last.status == training_pb2.RUN_STATUS_SUCCEEDED
        assert "registered without alias champion" in last.message and "not above the floor 0.999" in last.message


async def test_logistic_regression_and_a_regression_train_on_the_same_rows(service: Service) -> None:
    synthetic.write_lake(service.lake, transactions=2500)
    logistic = await finished(service.runs, (await service.worker.start(spec("logistic_regression"))).run_id)
    assert logistic.status == training_pb2.RUN_STATUS_SUCCEEDED, logistic.error_message
    assert logistic.metrics["auc"] > 0.75 and logistic.metrics["triton_max_abs_diff"] <= 1e-5

    regression = spec("mlp_regressor")
    regression.model_name = "toy_amount"
    regression.label.CopyFrom(training_pb2.LabelSpec(target_field="amount", kind=training_pb2.LABEL_KIND_REGRESSION))
    done = await finished(service.runs, (await service.worker.start(regression)).run_id)
    assert done.status == training_pb2.RUN_STATUS_SUCCEEDED, done.error_message
    assert done.metrics["r2"] > 0.5  # amount is a context field fed through toy:amount_log
    version = await service.registry.get_alias("toy_amount", "champion")
    assert version.triton_model_name == "toy_amount" and version.signature.task == signature_pb2.TASK_REGRESSION


async def test_failures_end_the_run_failed_with_the_reason(service: Service) -> None:
    synthetic.write_lake(service.lake, transactions=1500)
    service.features.down = True
    with pytest.raises(Exception, match="feature service at fake:0 is unavailable"):
        await service.worker.start(spec())

    service.features.down = False
    immature = await finished(service.runs, (await service.worker.start(spec(maturity_days=60))).run_id)
    assert immature.status == training_pb2.RUN_STATUS_FAILED
    assert "lower spec.label.maturity" in immature.error_message


async def test_invalid_specs_are_rejected_before_queueing(service: Service) -> None:
    with pytest.raises(NotFound, match="no data in the lake"):
        await service.worker.start(spec())
    synthetic.write_lake(service.lake, transactions=300)
    with pytest.raises(InvalidArgument, match="feature_service"):
        await service.worker.start(training_pb2.RunSpec(model_name="toy", trainer="mlp_classifier"))
    with pytest.raises(InvalidArgument, match="unknown keys"):
        await service.worker.start(spec(learning_rat="0.1"))
    with pytest.raises(NotFound, match="trainers: logistic_regression, mlp_classifier, mlp_regressor"):
        await service.worker.start(spec("xgboost"))
    unknown_service = spec()
    unknown_service.feature_service = "nope"
    with pytest.raises(NotFound, match="feature services: toy_v1"):
        await service.worker.start(unknown_service)
    bad_field = spec()
    bad_field.rows.context_fields.append("colour")
    with pytest.raises(InvalidArgument, match=r"no field\(s\) colour; its fields: "):
        await service.worker.start(bad_field)
    bad_source = spec()
    bad_source.label.source = "refunds"
    with pytest.raises(NotFound, match="sources with data: card_transactions, chargebacks"):
        await service.worker.start(bad_source)
    with pytest.raises(InvalidArgument, match="predicts TASK_REGRESSION"):
        await service.worker.start(spec("mlp_regressor"))
    bad_name = spec()
    bad_name.triton_model_name = "../etc"
    with pytest.raises(InvalidArgument, match="triton_model_name"):
        await service.worker.start(bad_name)
    assert await service.runs.list_runs(Page(0, 10)) == []


async def test_an_export_into_another_models_triton_model_is_refused(service: Service) -> None:
    synthetic.write_lake(service.lake, transactions=1500)
    first = await finished(service.runs, (await service.worker.start(spec(epochs="2"))).run_id)
    assert first.status == training_pb2.RUN_STATUS_SUCCEEDED, first.error_message
    other = spec(epochs="2")
    other.model_name = "other"
    other.triton_model_name = "toy"
    with pytest.raises(FailedPrecondition, match="Triton model 'toy' belongs to model 'toy'"):
        await service.worker.start(other)
    assert (service.repo / "toy" / "1" / "model.pt").is_file()


def test_torchscript_export_scores_like_the_module_with_categorical_inputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    inputs = [
        signature_pb2.SignatureInput(name="v:x", kind=signature_pb2.INPUT_KIND_NUMERIC),
        signature_pb2.SignatureInput(name="v:c", kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=["a", "b"]),
    ]
    rng = np.random.default_rng(1)
    x = np.stack([rng.normal(size=64), rng.integers(0, 3, size=64)], axis=1).astype(np.float32)
    encoder = TabularEncoder(inputs, x)
    assert encoder.width == 1 + 3
    module = BinaryClassifier(encoder, mlp(encoder.width, (8, 4), 1)).eval()
    save_torchscript(module, tmp_path / "model.pt")
    scripted = load_torchscript(tmp_path / "model.pt")
    np.testing.assert_allclose(predict(scripted, x), predict(module, x), atol=1e-6)
    assert predict(scripted, x).min() >= 0.0 and predict(scripted, x).max() <= 1.0
    encoded = encoder(torch.tensor([[0.0, 2.0], [0.0, 7.0]]))
    assert encoded[0, 1:].tolist() == [0.0, 0.0, 1.0] and encoded[1, 1:].tolist() == [0.0, 0.0, 1.0]
