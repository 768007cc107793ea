"""The training service in-process against real Kafka, real Triton and SQLite, with a fake FeatureService.

What it proves: StartRun over gRPC trains on a synthetic lake (learnable fraud signal), reads
point-in-time features over gRPC, exports to the Triton model repository, loads the model through the
model-control API, scores in Triton exactly like the TorchScript module (1e-5), points ``champion`` at
version 1 and publishes RunEvents and ModelEvents to (unique) Kafka topics; a run whose feature service
is unknown ends FAILED with the reason and the service keeps working; after Triton lost the model (as after
a restart: explicit model control starts empty), a fresh training service on the same database loads the
champion's Triton model again. Prints the measured numbers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.duration_pb2 import Duration
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.training.v1 import events_pb2, training_pb2, training_pb2_grpc
from aimesh.core.app import connect_producer
from aimesh.core.channels import open_caller_channel
from aimesh.core.runner import ServiceRuntime
from aimesh.core.signature import to_value
from aimesh.training.app import wire_training
from aimesh.training.model import load_torchscript, predict
from aimesh.training.settings import TrainingSettings

pytestmark = [pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


synthetic = _load("training_synthetic_lake", REPO_ROOT / "services" / "training" / "tests" / "synthetic.py")


def _model_repo() -> Path:
    if "AIMESH_TRITON_MODEL_REPO" in os.environ:
        return Path(os.environ["AIMESH_TRITON_MODEL_REPO"])
    return Path(os.environ.get("AIMESH_HOME", REPO_ROOT / ".aimesh")) / "data" / "triton" / "models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ToyFeatureService(feature_pb2_grpc.FeatureServiceServicer):
    """GetHistoricalFeatures over ``synthetic.toy_features``; feature service ``toy_v1`` only."""

    def __init__(self) -> None:
        self.rows_served = 0

    async def GetOnlineFeatures(
        self, request: feature_pb2.GetOnlineFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        if request.feature_service != "toy_v1":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"feature service {request.feature_service!r} is unknown")
        if not request.entity_rows:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no rows: set entity_ids or entity_rows")
        return feature_pb2.GetOnlineFeaturesResponse(feature_names=synthetic.FEATURE_NAMES)

    async def GetHistoricalFeatures(
        self, request: feature_pb2.GetHistoricalFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[feature_pb2.GetHistoricalFeaturesResponse]:
        if request.feature_service != "toy_v1":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"feature service {request.feature_service!r} is unknown")
        rows = []
        for i, row in enumerate(request.entity_rows):
            ctx = row.request_context
            assert set(row.entity_ids) == {"card", "customer"}
            values = synthetic.toy_features(
                ctx["amount"].double_value,
                ctx["merchant_category"].string_value,
                ctx["country"].string_value,
                row.timestamp.ToDatetime(),
                ctx["merchant_id"].string_value,
            )
            rows.append(
                feature_pb2.HistoricalFeatureRow(
                    row_index=i,
                    entity_id=row.entity_ids["card"],
                    timestamp=row.timestamp,
                    values=[
                        feature_pb2.FeatureValue(value=to_value(v), status=feature_pb2.FEATURE_STATUS_PRESENT)
                        for v in values
                    ],
                )
            )
        self.rows_served += len(rows)
        for start in range(0, len(rows), 500):
            yield feature_pb2.GetHistoricalFeaturesResponse(
                feature_names=synthetic.FEATURE_NAMES if start == 0 else [], rows=rows[start : start + 500]
            )


async def wait_finished(stub: training_pb2_grpc.TrainingServiceStub, run_id: str, within: float) -> training_pb2.Run:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        run = (await stub.GetRun(training_pb2.GetRunRequest(run_id=run_id), timeout=5)).run
        if run.status in (training_pb2.RUN_STATUS_SUCCEEDED, training_pb2.RUN_STATUS_FAILED):
            return run
        await asyncio.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish within {within}s")


async def wait_model_ready(
    triton: InferenceServerClient, name: str, version: str, *, ready: bool, within: float
) -> float:
    """Poll Triton until ``name``/``version`` is (not) READY; returns the seconds it took."""
    started = time.monotonic()
    while bool(await triton.is_model_ready(name, version, client_timeout=5)) != ready:
        if time.monotonic() - started > within:
            raise AssertionError(f"{name} v{version} is {'not ' if ready else ''}READY after {within}s")
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def start_training(settings: TrainingSettings) -> tuple[ServiceRuntime, asyncio.Task[None]]:
    runtime = ServiceRuntime(settings, "test")
    producer = await connect_producer(settings)
    runtime.add_cleanup(producer.stop)
    await wire_training(settings, runtime, producer)
    return runtime, asyncio.create_task(runtime.run())


async def read_topic(
    bootstrap: str, topic: str, message_type: type[Any], expect: int, within: float = 30.0
) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(found) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    msg = message_type()
                    msg.ParseFromString(record.value)
                    found.append((record.key, dict(record.headers), msg))
    finally:
        await consumer.stop()
    return found


async def test_start_run_trains_exports_loads_and_promotes(
    endpoints: Any, make_topic: Callable[..., Any], unique: str, tmp_path: Path
) -> None:
    repo = _model_repo()
    if not repo.is_dir():
        pytest.fail(f"Triton model repository {repo} does not exist: start `aimesh up --infra-only`", pytrace=False)
    summary = synthetic.write_lake(tmp_path / "lake", transactions=3000)
    runs_topic, models_topic, alerts_topic = (
        await make_topic("training-runs"),
        await make_topic("registry-models"),
        await make_topic("alerts"),
    )
    triton_name = f"fraud_mlp_it_{unique}"
    model_name = f"fraud_it_{unique}"

    features = ToyFeatureService()
    feature_server = grpc.aio.server()
    feature_pb2_grpc.add_FeatureServiceServicer_to_server(features, feature_server)
    feature_port = feature_server.add_insecure_port("127.0.0.1:0")
    await feature_server.start()

    settings = TrainingSettings(
        grpc_port=free_port(),
        admin_port=free_port(),
        kafka_bootstrap=endpoints.kafka_bootstrap,
        consumer_group=f"training-it-{unique}",
        topics=[alerts_topic],
        runs_topic=runs_topic,
        registry_topic=models_topic,
        data_dir=tmp_path / "data",
        lake_dir=tmp_path / "lake",
        model_repository=repo,
        triton_grpc=endpoints.triton_grpc,
        feature_grpc=f"127.0.0.1:{feature_port}",
        ship_logs=False,
        shutdown_grace_seconds=3,
        outbox_interval_seconds=1,
    )
    runtime, service = await start_training(settings)
    triton = InferenceServerClient(url=endpoints.triton_grpc)
    channel = open_caller_channel(f"127.0.0.1:{settings.grpc_port}")
    try:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        await channel.channel_ready()
        spec = training_pb2.RunSpec(
            model_name=model_name,
            feature_service="toy_v1",
            trainer="mlp_classifier",
            register_model=True,
            triton_model_name=triton_name,
            rows=training_pb2.TrainingRows(
                source="card_transactions",
                entity_fields={"entity_key": "card", "customer_id": "customer"},
                context_fields=["amount", "merchant_category", "country", "merchant_id"],
            ),
            label=training_pb2.LabelSpec(
                source="chargebacks",
                join_field="transaction_id",
                target_field="reason",
                kind=training_pb2.LABEL_KIND_BINARY,
                positive_values=["fraud"],
                maturity=Duration(seconds=10 * 86400),
            ),
        )

        bad = training_pb2.RunSpec()
        bad.CopyFrom(spec)
        bad.feature_service = "nope"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.StartRun(training_pb2.StartRunRequest(spec=bad), timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in (refused.value.details() or "")

        started = time.perf_counter()
        run = (await stub.StartRun(training_pb2.StartRunRequest(spec=spec, idempotency_key=unique), timeout=10)).run
        assert run.status == training_pb2.RUN_STATUS_QUEUED
        again = (await stub.StartRun(training_pb2.StartRunRequest(spec=spec, idempotency_key=unique), timeout=10)).run
        assert again.run_id == run.run_id
        run = await wait_finished(stub, run.run_id, within=300)
        wall = time.perf_counter() - started
        assert run.status == training_pb2.RUN_STATUS_SUCCEEDED, run.error_message
        assert run.metrics["auc"] > 0.75, dict(run.metrics)
        assert run.model_version == 1
        assert features.rows_served > 1000

        champion = (
            await stub.GetAlias(training_pb2.GetAliasRequest(model_name=model_name, alias="champion"), timeout=5)
        ).model_version
        assert (champion.version, champion.triton_model_name, champion.triton_model_version) == (1, triton_name, 1)
        assert list(champion.features) == synthetic.FEATURE_NAMES and champion.aliases == ["champion"]
        listed = await stub.ListRuns(training_pb2.ListRunsRequest(model_name=model_name), timeout=5)
        assert [r.run_id for r in listed.runs] == [run.run_id]
        assert [i.kind for i in champion.signature.inputs][:2] == [
            signature_pb2.INPUT_KIND_NUMERIC,
            signature_pb2.INPUT_KIND_CATEGORICAL,
        ]
        audit = await stub.ListAliasAudit(training_pb2.ListAliasAuditRequest(model_name=model_name), timeout=5)
        assert [(c.actor, c.new_version) for c in audit.changes] == [("training", 1)]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SetAlias(
                training_pb2.SetAliasRequest(
                    model_name=model_name, alias="champion", version=1, actor="it", expected_version=0
                ),
                timeout=5,
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        assert await triton.is_model_ready(triton_name, "1", client_timeout=5)
        batch = np.random.default_rng(5).normal(size=(256, len(synthetic.FEATURE_NAMES))).astype(np.float32)
        batch[:, 0] = np.abs(batch[:, 0]) * 3
        batch[:, 1] = np.arange(256) % (len(champion.signature.inputs[1].vocabulary) + 1)  # category indexes
        inp = InferInput("INPUT__0", list(batch.shape), "FP32")
        inp.set_data_from_numpy(batch)
        await triton.infer(triton_name, [inp], model_version="1", client_timeout=30)  # warm-up
        t0 = time.perf_counter()
        result = await triton.infer(
            triton_name, [inp], model_version="1", outputs=[InferRequestedOutput("OUTPUT__0")], client_timeout=30
        )
        infer_ms = (time.perf_counter() - t0) * 1000
        served = result.as_numpy("OUTPUT__0")
        assert served is not None and served.shape == (256, 1) and served.dtype == np.float32
        expected = predict(load_torchscript(repo / triton_name / "1" / "model.pt"), batch)
        np.testing.assert_allclose(served.reshape(-1), expected, rtol=0, atol=1e-5)

        model_events = await read_topic(endpoints.kafka_bootstrap, models_topic, events_pb2.ModelEvent, expect=2)
        kinds = [(key, msg.kind, msg.version) for key, _h, msg in model_events]
        assert kinds == [
            (model_name.encode(), events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED, 1),
            (model_name.encode(), events_pb2.MODEL_EVENT_KIND_ALIAS_CHANGED, 1),
        ]
        alias_event = model_events[1][2]
        assert alias_event.triton_model_name == triton_name and alias_event.feature_service == "toy_v1"
        assert alias_event.alias_change.alias == "champion" and alias_event.reference_profile.count > 0
        run_events = await read_topic(endpoints.kafka_bootstrap, runs_topic, events_pb2.RunEvent, expect=6)
        ours = [msg.status for key, _h, msg in run_events if key == run.run_id.encode()]
        assert ours == [
            training_pb2.RUN_STATUS_QUEUED,
            training_pb2.RUN_STATUS_RUNNING,
            training_pb2.RUN_STATUS_SUCCEEDED,
        ]
        print(
            f"\ntraining service: {summary.transactions} transactions ({summary.frauds} fraud), "
            f"train {run.metrics['train_rows']:.0f} / eval {run.metrics['eval_rows']:.0f} rows, "
            f"eval AUC {run.metrics['auc']:.4f}, precision {run.metrics['precision']:.3f}, "
            f"recall {run.metrics['recall']:.3f}; training {run.metrics['train_seconds']:.2f}s; "
            f"Triton load {run.metrics['triton_load_seconds']:.2f}s; infer 256 rows {infer_ms:.1f} ms; "
            f"StartRun -> SUCCEEDED {wall:.1f}s; max |triton - torch| {run.metrics['triton_max_abs_diff']:.2e}"
        )

        runtime.request_stop()
        await asyncio.wait_for(service, timeout=30)
        await triton.unload_model(triton_name, client_timeout=60)
        await wait_model_ready(triton, triton_name, "1", ready=False, within=60)
        restart = settings.model_copy(update={"grpc_port": free_port(), "admin_port": free_port()})
        runtime, service = await start_training(restart)
        restore_s = await wait_model_ready(triton, triton_name, "1", ready=True, within=120)
        assert not service.done()
        print(f"restart: champion's Triton model READY again {restore_s:.1f}s after the training service started")
    finally:
        await channel.close()
        try:
            await triton.unload_model(triton_name, client_timeout=60)
        finally:
            await triton.close()
            shutil.rmtree(repo / triton_name, ignore_errors=True)
            runtime.request_stop()
            await asyncio.wait_for(service, timeout=30)
            await feature_server.stop(None)
