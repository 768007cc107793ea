"""The main job end to end: a reduced fraud scenario through all five services on the real servers.

The five services run as processes of their own (as `aimesh up` runs them) on free ports, with topics,
consumer groups, data directory, Triton model name and Elasticsearch indices unique to this run, so
the test never touches the demo's data (``tests.e2e.mesh.running_mesh``). The scenario is driven from
outside, as a bank would: JSON into Kafka, ``Score`` over gRPC (from Python and from the Java bank client).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import torch
from aiokafka import AIOKafkaConsumer, TopicPartition
from elasticsearch import AsyncElasticsearch
from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2, deadletter_pb2
from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core import lake
from aimesh.core.channels import open_caller_channel
from aimesh.devstack.paths import Paths
from aimesh.devstack.triton import model_repository
from aimesh.examples.banking.generator import generate_events
from aimesh.examples.banking.model import Stream
from aimesh.examples.banking.pack import training_spec
from aimesh.examples.banking.scenario import (
    MODEL_NAME,
    Scenario,
    ScenarioConfig,
    ScenarioSummary,
)
from tests.clients.go_client import build_go_client, go_score, next_item_models, recommend_mismatches
from tests.clients.java_client import build_java_client, run_java_client
from tests.e2e import machine_failure
from tests.e2e.mesh import MeshUnderTest, indexed_predictions, predictions_by_request, running_mesh

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EVENTS = 8000
PAYMENTS = 200
AUC_FLOOR = 0.8
"""Random scoring gives 0.5. The generator's fraud is account takeover (new device + new country + high
amount), card testing (bursts of small charges, then a big one) and risky merchant categories; the
features name each of these signals, and full-size demo runs reach 0.99. With ~8000 events the eval
slice holds a few dozen frauds, so 0.8 leaves room for small-sample noise while still failing a model
that learned nothing (or a pipeline that leaks or scrambles labels)."""
PAN = re.compile(rb"(?<![0-9])[0-9]{16}(?![0-9])")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshUnderTest]:
    with running_mesh(
        tmp_path_factory.mktemp("mesh"),
        sources={"card_transactions": "transactions", "chargebacks": "chargebacks"},
        streams={Stream.TRANSACTIONS: "transactions", Stream.CHARGEBACKS: "chargebacks"},
        model_prefix="fraud",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def scenario_run(mesh: MeshUnderTest) -> tuple[Scenario, ScenarioSummary]:
    config = ScenarioConfig(
        events=EVENTS,
        payments=PAYMENTS,
        seed=901,
        end=datetime.now(UTC) - timedelta(minutes=5),
        step_timeout_s=300,
        triton_model_name=mesh.triton_model,
    )

    async def go() -> tuple[Scenario, ScenarioSummary]:
        scenario = Scenario(mesh.address, config)
        try:
            return scenario, await scenario.run()
        finally:
            await scenario.close()

    return asyncio.run(go())


async def read_topic(topic: str) -> list[tuple[int, int, bytes, list[tuple[str, bytes]]]]:
    """Every record of ``topic`` as (partition, offset, value, headers), read from the beginning to the end."""
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9092", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for tp_records in batch.values():
                records.extend((r.partition, r.offset, r.value or b"", list(r.headers or ())) for r in tp_records)
        return records
    finally:
        await consumer.stop()


def leaked(data: bytes, pans: set[str]) -> set[str]:
    return {m.decode() for m in PAN.findall(data)} & pans


async def model_version(mesh: MeshUnderTest, version: int) -> training_pb2.ModelVersion:
    async with open_caller_channel(mesh.address.training_grpc) as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        reply = await stub.GetModelVersion(training_pb2.GetModelVersionRequest(model_name=MODEL_NAME, version=version))
        return reply.model_version  # type: ignore[no-any-return]


def torch_scores(mesh: MeshUnderTest, mv: training_pb2.ModelVersion, docs: list[dict]) -> list[float]:  # type: ignore[type-arg]
    module = torch.jit.load(
        str(model_repository(Paths.default()) / mv.triton_model_name / str(mv.triton_model_version) / "model.pt")
    )
    rows = [[float(doc["features"][name]) for name in mv.features] for doc in docs]
    with torch.no_grad():
        out = module(torch.tensor(rows, dtype=torch.float32))
    return [float(v) for v in out.reshape(-1)]


def test_no_event_lost_or_duplicated_between_upstream_and_lake(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    scenario, summary = scenario_run
    expected: dict[str, set[str]] = {"card_transactions": set(), "chargebacks": set()}
    for event in generate_events(scenario.generator_config):
        if event.malformed is None:
            source = "card_transactions" if event.stream is Stream.TRANSACTIONS else "chargebacks"
            expected[source].add(event.event_id)
    root = mesh.lake
    for source, ids in expected.items():
        in_lake = lake.dataset(root, source).to_table(columns=["event_id"]).column("event_id").to_pylist()
        assert len(in_lake) == len(set(in_lake)), f"{source}: duplicated event ids in the lake"
        assert set(in_lake) == ids, f"{source}: lost {len(ids - set(in_lake))}, unexpected {len(set(in_lake) - ids)}"
    assert summary.ingest_accepted == sum(len(ids) for ids in expected.values())


def test_every_malformed_event_is_in_the_dlq_with_its_reason(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    _, summary = scenario_run
    letters = asyncio.run(read_topic(mesh.topics["dlq"]))
    by_position = {}
    for _, _, value, _ in letters:
        letter = deadletter_pb2.DeadLetter.FromString(value)
        key = (letter.upstream.topic, letter.upstream.partition, letter.upstream.offset)
        by_position[key] = letter
    malformed = summary.published.malformed
    assert malformed, "the generator must have produced malformed records"
    for record in malformed:
        letter = by_position.get((record.topic, record.partition, record.offset))
        assert letter is not None, f"{record} is not in the DLQ"
        assert deadletter_pb2.ReasonCode.Name(letter.reason_code) == f"REASON_CODE_{record.expected_reason}", record
        assert letter.message
    assert len(by_position) == len(malformed)


def test_scores_equal_the_pytorch_model_and_are_findable_by_request_id(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    _, summary = scenario_run
    assert summary.run is not None
    assert not summary.errors, summary.errors
    scored = [s for s in summary.scored if s.response is not None]
    assert len(scored) == PAYMENTS

    async def check() -> None:
        async with AsyncElasticsearch(mesh.address.elasticsearch_url) as es:
            docs = await predictions_by_request(es, mesh.address.index_prefix, [s.response.request_id for s in scored])  # type: ignore[union-attr]
        assert set(docs) == {s.response.request_id for s in scored}, "every prediction findable by request id"  # type: ignore[union-attr]
        mv = await model_version(mesh, summary.run.model_version)  # type: ignore[union-attr]
        ordered = [docs[s.response.request_id] for s in scored]  # type: ignore[union-attr]
        expected = torch_scores(mesh, mv, ordered)
        for s, want in zip(scored, expected, strict=True):
            assert s.response is not None
            assert s.response.model_version == summary.run.model_version  # type: ignore[union-attr]
            assert abs(s.response.score - want) < 1e-5, (s.response.request_id, s.response.score, want)

    asyncio.run(check())


def model_scores_of_logged_requests(mesh: MeshUnderTest, version: int, request_ids: list[str]) -> list[float]:
    """The exported PyTorch model's output on the features each request's Prediction logged (waits up to
    30 s for monitor to index them), in ``request_ids`` order."""

    async def compute() -> list[float]:
        docs = await indexed_predictions(mesh.address.elasticsearch_url, mesh.address.index_prefix, request_ids, 30)
        mv = await model_version(mesh, version)
        return torch_scores(mesh, mv, [docs[i] for i in request_ids])

    return asyncio.run(compute())


def test_java_bank_client_gets_the_same_scores_as_the_model(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    _, summary = scenario_run
    payments = [dict(s.payment, request_id=f"java-{s.payment['request_id']}") for s in summary.scored[:5]]
    jar = build_java_client()
    lines = run_java_client(jar, mesh.address.inference_grpc, payments)
    assert [line["status"] for line in lines] == ["OK"] * len(payments), lines

    expected = model_scores_of_logged_requests(mesh, summary.run.model_version, [line["request_id"] for line in lines])
    for line, want in zip(lines, expected, strict=True):
        assert abs(float(line["score"]) - want) < 1e-5, (line, want)


def test_go_client_gets_the_same_scores_as_the_model(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    """The Go client (tests/clients/go) scores payments as the Python scenario did: same model version and
    route, and the exported PyTorch model's output on the features its own Predictions logged."""
    _, summary = scenario_run
    binary = build_go_client()
    lines = []
    for s in summary.scored[:5]:
        p = s.payment
        context = {k: v for k, v in p.items() if k not in ("request_id", "card_id", "customer_id")}
        entity_ids = {"card": str(p["card_id"]), "customer": str(p["customer_id"])}
        request_id = f"go-{p['request_id']}"
        lines.append(
            go_score(binary, mesh.address.inference_grpc, MODEL_NAME, entity_ids, context, request_id=request_id)
        )
    assert [line["status"] for line in lines] == ["OK"] * len(lines), lines
    python = [s.response for s in summary.scored[:5]]
    assert [(line["model_version"], line["route"]) for line in lines] == [
        (r.model_version, inference_pb2.Route.Name(r.route)) for r in python if r is not None
    ]

    expected = model_scores_of_logged_requests(mesh, summary.run.model_version, [line["request_id"] for line in lines])
    for line, want in zip(lines, expected, strict=True):
        assert abs(float(line["score"]) - want) < 1e-5, (line, want)


def test_online_features_equal_offline_retrieval(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    _, summary = scenario_run
    at = Timestamp()
    at.FromDatetime(datetime.now(UTC))
    rows = []
    for s in summary.scored[:25]:
        p = s.payment
        context = {
            "amount": common_pb2.Value(double_value=float(p["amount"])),  # type: ignore[arg-type]
            **{
                k: common_pb2.Value(string_value=str(p[k]))
                for k in ("merchant_id", "merchant_category", "country", "device_id")
            },
        }
        rows.append(
            feature_pb2.EntityRow(
                entity_ids={"card": str(p["card_id"]), "customer": str(p["customer_id"])},
                timestamp=at,
                request_context=context,
            )
        )

    async def fetch() -> tuple[list[list[float]], list[list[float]], list[str]]:
        async with open_caller_channel(f"127.0.0.1:{mesh.grpc_ports['feature']}") as channel:
            stub = feature_pb2_grpc.FeatureServiceStub(channel)
            online = await stub.GetOnlineFeatures(
                feature_pb2.GetOnlineFeaturesRequest(feature_service=training_spec().feature_service, entity_rows=rows)
            )
            offline_rows: dict[int, list[float]] = {}
            names: list[str] = list(online.feature_names)
            async for chunk in stub.GetHistoricalFeatures(
                feature_pb2.GetHistoricalFeaturesRequest(
                    feature_service=training_spec().feature_service, entity_rows=rows
                )
            ):
                for row in chunk.rows:
                    offline_rows[row.row_index] = [v.value.double_value for v in row.values]
            on = [[v.value.double_value for v in row.values] for row in sorted(online.rows, key=lambda r: r.row_index)]
            off = [offline_rows[i] for i in range(len(rows))]
            return on, off, names

    online, offline, names = asyncio.run(fetch())
    assert len(online) == len(rows) and len(names) == 16
    assert any(any(v != 0.0 for v in row) for row in online), "the sampled cards must have history"
    for i, (on, off) in enumerate(zip(online, offline, strict=True)):
        assert on == off, f"row {i}: " + ", ".join(
            f"{n}: {a} != {b}" for n, a, b in zip(names, on, off, strict=False) if a != b
        )


def test_model_quality_and_drift_report(scenario_run) -> None:  # type: ignore[no-untyped-def]
    _, summary = scenario_run
    assert summary.run is not None
    auc = summary.run.metrics["auc"]
    assert auc > AUC_FLOOR, f"eval AUC {auc:.3f} <= {AUC_FLOOR}"
    assert summary.drift is not None
    assert summary.drift.sample_count >= PAYMENTS
    assert 0.0 <= summary.drift.psi < 10.0


def test_no_raw_card_number_after_ingest(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    _, summary = scenario_run
    pans = summary.published.card_numbers
    assert len(pans) > 50

    for path in (mesh.lake).rglob("*.parquet"):
        assert not leaked(path.read_bytes(), pans), f"raw card number in {path}"
    for name in ("records", "dlq", "predictions", "logs", "registry", "runs", "alerts"):
        for _, offset, value, headers in asyncio.run(read_topic(mesh.topics[name])):
            blob = value + b"".join(k.encode() + v for k, v in headers)
            assert not leaked(blob, pans), f"raw card number in topic {name} at offset {offset}"
    for log in mesh.paths.logs.glob("*.log"):
        assert not leaked(log.read_bytes(), pans), f"raw card number in {log}"

    async def scan_es() -> None:
        async with AsyncElasticsearch(mesh.address.elasticsearch_url) as es:
            index = f"{mesh.address.index_prefix}-*"
            await es.indices.refresh(index=index)
            reply = await es.search(index=index, query={"match_all": {}}, size=10_000)
            hits = reply["hits"]["hits"]
            assert hits, "monitor indexed nothing"
            assert not leaked(orjson.dumps([h["_source"] for h in hits]), pans)

    asyncio.run(scan_es())


def test_a_use_case_no_code_has_seen_runs_beside_fraud(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    """Machine-failure prediction (tests/e2e/machine_failure.py), onboarded through the public APIs only
    while the fraud scenario's model keeps serving: AUC on the planted signal, Triton parity, the fraud
    champion untouched, predictions in Elasticsearch."""
    _, summary = scenario_run
    before = asyncio.run(model_version(mesh, summary.run.model_version))
    outcome = asyncio.run(
        machine_failure.run_use_case(
            ingest_grpc=mesh.address.ingest_grpc,
            feature_grpc=mesh.address.feature_grpc,
            training_grpc=mesh.address.training_grpc,
            inference_grpc=mesh.address.inference_grpc,
            lake_root=mesh.lake,
            unique=mesh.unique,
        )
    )
    print(f"\nmachine failure: eval AUC {outcome.aucs}, max |triton - torch| {outcome.parity}, {outcome.scored} scored")
    try:
        for trainer, auc in outcome.aucs.items():
            assert auc > 0.75, f"{trainer}: eval AUC {auc:.3f} on the planted signal"
            assert outcome.parity[trainer] <= 1e-5
        after = asyncio.run(model_version(mesh, summary.run.model_version))
        assert after.aliases == before.aliases and after.triton_model_name == before.triton_model_name

        docs = asyncio.run(
            indexed_predictions(mesh.address.elasticsearch_url, mesh.address.index_prefix, outcome.request_ids)
        )
        assert set(docs) == set(outcome.request_ids)
        assert {d["model"]["name"] for d in docs.values()} == {outcome.models["logistic_regression"]}
    finally:
        for name in outcome.models.values():
            shutil.rmtree(model_repository(Paths.default()) / name, ignore_errors=True)


def test_go_client_recommends_what_the_python_client_recommends(scenario_run, mesh: MeshUnderTest) -> None:  # type: ignore[no-untyped-def]
    """For every TASK_NEXT_ITEM model this mesh serves, the Go client's Recommend answers equal the Python
    client's for the same requests (tests.clients.go_client.recommend_mismatches). Last in the module: it
    sees every model the tests before it trained."""
    models = asyncio.run(next_item_models(mesh.address.training_grpc, mesh.address.inference_grpc))
    if not models:
        pytest.skip("no TASK_NEXT_ITEM model is registered in this mesh: nothing to Recommend with")
    binary = build_go_client()
    for model in models:
        problems = asyncio.run(recommend_mismatches(binary, mesh.address.inference_grpc, model))
        assert not problems, "\n".join(problems)
