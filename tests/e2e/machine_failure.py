"""A use case no aimesh code has seen: a manufacturer's machine-failure prediction from sensor readings.

Everything about it lives here, in the test: two sources (sensor readings; maintenance tickets that say,
hours later, whether a reading preceded a failure), its features (entity ``machine``: 24 h temperature
mean and reading count from the stream; the reading's own temperature, vibration and site, a categorical,
from the request context), its training specs (``logistic_regression`` and ``mlp_classifier``) and its
data, with a planted signal: failure is likely when vibration is high, more so at site ``south`` and on
machines that ran hot. It goes through the public APIs only: RegisterSource (``aimesh.ingest.operations``),
Publish, ApplyDefinitions (``aimesh.feature.operations``), StartRun, GetModelSignature and Score.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import orjson
from google.protobuf.duration_pb2 import Duration

from aimesh.api.common.v1 import common_pb2
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core import lake
from aimesh.core.channels import open_caller_channel
from aimesh.feature.operations import apply_file
from aimesh.ingest.operations import apply_sources

SOURCES = """
sources:
  - name: sensor_readings
    topic: factory.sensor-readings
    entity_type: machine
    entity_key: machine_id
    event_id_field: reading_id
    event_time_field: timestamp
    fields:
      - {name: reading_id, type: string, required: true}
      - {name: machine_id, type: string, required: true}
      - {name: site, type: string, required: true, allowed_values: [north, south, east]}
      - {name: temperature, type: double, required: true}
      - {name: vibration, type: double, required: true, min: 0}
      - {name: timestamp, type: timestamp, required: true}
  - name: maintenance_tickets
    topic: factory.maintenance-tickets
    entity_type: machine
    entity_key: machine_id
    event_id_field: ticket_id
    event_time_field: timestamp
    fields:
      - {name: ticket_id, type: string, required: true}
      - {name: reading_id, type: string, required: true}
      - {name: machine_id, type: string, required: true}
      - {name: outcome, type: string, required: true, allowed_values: [failure, ok]}
      - {name: timestamp, type: timestamp, required: true}
"""

FEATURES = """
entities:
  - {name: machine, key: entity_key, description: A machine on the shop floor}
feature_views:
  - name: machine_stats
    entity: machine
    source: sensor_readings
    features:
      - {name: machine_temperature_mean_24h, aggregation: mean, field: temperature, window: 24h}
      - {name: machine_readings_24h, aggregation: count, window: 24h}
  - name: reading
    source: request
    features:
      - {name: temperature_now, aggregation: on_demand, expression: float(temperature)}
      - {name: vibration_now, aggregation: on_demand, expression: float(vibration)}
      - {name: site_now, aggregation: on_demand, expression: str(site)}
feature_services:
  - name: machine_failure_v1
    features: [machine_stats:*, reading:*]
"""

SITES = ("north", "south", "east")
MACHINES = 40
READINGS = 3000


@dataclass(frozen=True)
class Outcome:
    """What the use case measured."""

    aucs: dict[str, float]
    parity: dict[str, float]
    scored: int
    request_ids: list[str]
    models: dict[str, str]
    """Trainer -> registered model name."""


def generate(seed: int, end: datetime) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Readings over 5 days before ``end`` and a maintenance ticket 2 h after each failing or sampled reading."""
    rng = random.Random(seed)
    hot = {f"m-{i}": rng.random() < 0.3 for i in range(MACHINES)}
    site = {f"m-{i}": SITES[i % 3] for i in range(MACHINES)}
    start = end - timedelta(days=5)
    readings, tickets = [], []
    for i in range(READINGS):
        machine = f"m-{rng.randrange(MACHINES)}"
        at = start + timedelta(seconds=rng.uniform(0, 5 * 86400 - 7200))
        temperature = rng.gauss(78 if hot[machine] else 65, 4)
        vibration = abs(rng.gauss(1.0, 0.6))
        logit = -4.5 + 2.2 * vibration + (1.5 if site[machine] == "south" else 0.0) + (1.0 if hot[machine] else 0.0)
        failed = rng.random() < 1 / (1 + math.exp(-logit))
        reading_id = f"r-{seed}-{i}"
        readings.append(
            {
                "reading_id": reading_id,
                "machine_id": machine,
                "site": site[machine],
                "temperature": round(temperature, 2),
                "vibration": round(vibration, 3),
                "timestamp": at.isoformat(),
            }
        )
        if failed or rng.random() < 0.2:
            tickets.append(
                {
                    "ticket_id": f"t-{seed}-{i}",
                    "reading_id": reading_id,
                    "machine_id": machine,
                    "outcome": "failure" if failed else "ok",
                    "timestamp": (at + timedelta(hours=2)).isoformat(),
                }
            )
    return readings, tickets


async def publish(channel: grpc.aio.Channel, source: str, records: list[dict[str, object]]) -> int:
    """Publish ``records`` (JSON) in batches of 500; returns how many were ACCEPTED."""
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    accepted = 0
    for start in range(0, len(records), 500):
        batch = [ingest_pb2.Record(payload=orjson.dumps(r)) for r in records[start : start + 500]]
        reply = await stub.Publish(ingest_pb2.PublishRequest(source=source, records=batch), timeout=30)
        accepted += sum(r.status == ingest_pb2.RECORD_STATUS_ACCEPTED for r in reply.results)
    return accepted


def spec(model_name: str, trainer: str) -> training_pb2.RunSpec:
    """The use case's training spec: each reading as of its own time, labelled by a later ticket."""
    return training_pb2.RunSpec(
        model_name=model_name,
        feature_service="machine_failure_v1",
        trainer=trainer,
        register_model=True,
        params={"epochs": "40"} if trainer == "mlp_classifier" else {},
        rows=training_pb2.TrainingRows(
            source="sensor_readings",
            entity_fields={"entity_key": "machine"},
            context_fields=["temperature", "vibration", "site"],
        ),
        label=training_pb2.LabelSpec(
            source="maintenance_tickets",
            join_field="reading_id",
            target_field="outcome",
            kind=training_pb2.LABEL_KIND_BINARY,
            positive_values=["failure"],
            maturity=Duration(seconds=6 * 3600),
        ),
        split=training_pb2.SplitSpec(kind=training_pb2.SPLIT_KIND_TIME, train_fraction=0.75),
    )


async def wait_in_lake(root: Path, counts: dict[str, int], within_s: float = 120.0) -> None:
    """Wait until the lake holds ``counts[source]`` distinct events of each source."""
    deadline = time.monotonic() + within_s
    seen: dict[str, int] = {}
    while time.monotonic() < deadline:
        seen = {
            s: len(set(lake.dataset(root, s).to_table(columns=["event_id"]).column("event_id").to_pylist()))
            if lake.dataset(root, s).schema.names
            else 0
            for s in counts
        }
        if seen == counts:
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"the lake holds {seen}, expected {counts}")


async def train(stub: training_pb2_grpc.TrainingServiceStub, run_spec: training_pb2.RunSpec) -> training_pb2.Run:
    """Start a run and wait until it finished (at most 300 s)."""
    run = (await stub.StartRun(training_pb2.StartRunRequest(spec=run_spec), timeout=30)).run
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = (await stub.GetRun(training_pb2.GetRunRequest(run_id=run.run_id), timeout=10)).run
        if run.status in (training_pb2.RUN_STATUS_SUCCEEDED, training_pb2.RUN_STATUS_FAILED):
            return run
        await asyncio.sleep(1.0)
    raise AssertionError(f"run {run.run_id} of {run_spec.model_name} did not finish in 300 s")


def score_request(model: str, reading: dict[str, object], request_id: str) -> inference_pb2.ScoreRequest:
    """The Score request of one reading, built from the signature's names: entity machine, three context fields."""
    return inference_pb2.ScoreRequest(
        request_id=request_id,
        model=model,
        entity_ids={"machine": str(reading["machine_id"])},
        context={
            "temperature": common_pb2.Value(double_value=float(reading["temperature"])),  # type: ignore[arg-type]
            "vibration": common_pb2.Value(double_value=float(reading["vibration"])),  # type: ignore[arg-type]
            "site": common_pb2.Value(string_value=str(reading["site"])),
        },
    )


async def run_use_case(
    *, ingest_grpc: str, feature_grpc: str, training_grpc: str, inference_grpc: str, lake_root: Path, unique: str
) -> Outcome:
    """Onboard, train both trainers, and score 20 new readings with the logistic regression (see module doc)."""
    await apply_sources(ingest_grpc, SOURCES, dry_run=False)
    await apply_file(feature_grpc, FEATURES, dry_run=False)
    now = datetime.now(UTC)
    readings, tickets = generate(seed=11, end=now - timedelta(minutes=1))
    async with open_caller_channel(ingest_grpc) as channel:
        assert await publish(channel, "sensor_readings", readings) == len(readings)
        assert await publish(channel, "maintenance_tickets", tickets) == len(tickets)
    await wait_in_lake(lake_root, {"sensor_readings": len(readings), "maintenance_tickets": len(tickets)})
    models = {t: f"machine_failure_{t}_{unique}" for t in ("logistic_regression", "mlp_classifier")}
    aucs, parity = {}, {}
    async with open_caller_channel(training_grpc) as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        for trainer, name in models.items():
            run = await train(stub, spec(name, trainer))
            assert run.status == training_pb2.RUN_STATUS_SUCCEEDED, f"{trainer}: {run.error_message}"
            aucs[trainer] = run.metrics["auc"]
            parity[trainer] = run.metrics["triton_max_abs_diff"]
    fresh, _ = generate(seed=12, end=now)
    request_ids = []
    async with open_caller_channel(inference_grpc) as channel:
        stub_i = inference_pb2_grpc.InferenceServiceStub(channel)
        model = models["logistic_regression"]
        deadline = time.monotonic() + 60
        while True:
            try:
                signature = (
                    await stub_i.GetModelSignature(inference_pb2.GetModelSignatureRequest(model=model), timeout=5)
                ).signature
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    raise
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert list(signature.entity_types) == ["machine"] and signature.key_entity == "machine"
        assert [f.name for f in signature.context_fields] == ["temperature", "vibration", "site"]
        site = next(i for i in signature.inputs if i.name.endswith("site_now"))
        assert sorted(site.vocabulary) == sorted(SITES)
        incomplete = score_request(model, fresh[0], f"bad-{unique}")
        del incomplete.context["site"]
        try:
            await stub_i.Score(incomplete, timeout=5)
            raise AssertionError("a Score request without context 'site' was accepted")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "site" in (exc.details() or ""), exc
        for i, reading in enumerate(fresh[:20]):
            request_id = f"machine-{unique}-{i}"
            reply = await stub_i.Score(score_request(model, reading, request_id), timeout=5)
            assert 0.0 <= reply.score <= 1.0 and reply.outputs["score"].values[0] == reply.score
            request_ids.append(request_id)
    return Outcome(aucs=aucs, parity=parity, scored=len(request_ids), request_ids=request_ids, models=models)
