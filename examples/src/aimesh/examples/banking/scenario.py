"""The banking fraud scenario, driven from outside the mesh exactly as a bank would: Kafka in, gRPC out.

``run_scenario`` publishes card transactions and chargebacks, waits until ingest and feature have
taken them in (read from their ``/metrics``), trains and deploys a model through ``TrainingService``,
scores a stream of new payments through ``InferenceService.Score``, waits until monitor indexed every
prediction in Elasticsearch, and asks monitor for the score drift (PSI). ``make demo`` prints its
summary; the end-to-end test asserts on it. Every wait has a timeout and raises ``ScenarioError``
naming what did not happen and where to look.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import orjson
from elasticsearch import AsyncElasticsearch

from aimesh.api.common.v1 import common_pb2
from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core.channels import open_caller_channel
from aimesh.examples.banking.generator import GeneratorConfig, default_population, generate_events
from aimesh.examples.banking.model import Stream
from aimesh.examples.banking.pack import apply_pack, training_spec
from aimesh.examples.banking.publisher import DEFAULT_TOPICS, PublishSummary, bank_producer, publish_events
from aimesh.examples.mesh import ScenarioError
from aimesh.examples.mesh import ingest_counts as _ingest_counts
from aimesh.examples.mesh import metric_total as _metric_total
from aimesh.examples.mesh import poll as _poll

MODEL_NAME = "fraud"
Report = Callable[[str], None]


@dataclass(frozen=True)
class MeshAddress:
    """Where the scenario finds the mesh (defaults: what `aimesh up` starts)."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    topics: Mapping[Stream, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    ingest_admin: str = "http://127.0.0.1:8081"
    feature_admin: str = "http://127.0.0.1:8082"
    ingest_grpc: str = "127.0.0.1:50051"
    feature_grpc: str = "127.0.0.1:50052"
    training_grpc: str = "127.0.0.1:50053"
    inference_grpc: str = "127.0.0.1:50054"
    monitor_grpc: str = "127.0.0.1:50055"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    index_prefix: str = "aimesh"


@dataclass(frozen=True)
class ScenarioConfig:
    events: int = 20_000
    seed: int = 42
    payments: int = 1_000
    concurrency: int = 4
    span: timedelta = timedelta(days=30)
    end: datetime | None = None
    """Time of the last upstream event (default: when the scenario starts)."""
    step_timeout_s: float = 600.0
    run_params: Mapping[str, str] = field(default_factory=dict)
    triton_model_name: str = ""
    """Triton model of the trained version; default the model name (the pack's ``training.yaml``)."""


@dataclass(frozen=True)
class ScoredPayment:
    payment: dict[str, object]
    response: inference_pb2.ScoreResponse | None
    error: str | None
    latency_ms: float


@dataclass
class ScenarioSummary:
    published: PublishSummary
    ingest_accepted: int = 0
    dlq_by_reason: Counter[str] = field(default_factory=Counter)
    duplicates_dropped: int = 0
    run: training_pb2.Run | None = None
    scored: list[ScoredPayment] = field(default_factory=list)
    indexed_predictions: int = 0
    drift: monitor_pb2.DriftReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def latencies_ms(self) -> list[float]:
        return sorted(s.latency_ms for s in self.scored if s.response is not None)

    def latency_percentile(self, q: float) -> float:
        values = self.latencies_ms
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    @property
    def errors(self) -> Counter[str]:
        return Counter(s.error.split(":")[0] for s in self.scored if s.error is not None)


def payment_requests(population_of: GeneratorConfig, count: int, end: datetime) -> Iterator[dict[str, object]]:
    """``count`` well-formed payments, in the hour before ``end``, by the customers and cards of ``population_of``.

    The same seed and population size draw the same customers, cards and merchants, so the payments
    continue the histories the mesh has ingested (as a bank's next payments would).
    """
    customers, merchants = default_population(population_of.events)
    config = replace(
        population_of,
        events=count * 2,
        customers=population_of.customers or customers,
        merchants=population_of.merchants or merchants,
        end=end,
        span=timedelta(hours=1),
        malformed_fraction=0.0,
    )
    produced = 0
    for event in generate_events(config):
        if event.stream is not Stream.TRANSACTIONS:
            continue
        tx = orjson.loads(event.value)
        yield {
            "request_id": f"req-{tx['transaction_id']}",
            "card_id": tx["card_id"],
            "customer_id": tx["customer_id"],
            "amount": tx["amount"],
            "merchant_id": tx["merchant_id"],
            "merchant_category": tx["merchant_category"],
            "country": tx["country"],
            "device_id": tx["device_id"],
            "timestamp": tx["timestamp"],
        }
        produced += 1
        if produced == count:
            return


def score_request(payment: Mapping[str, object]) -> inference_pb2.ScoreRequest:
    """The ``Score`` request for one payment (the same mapping the Java bank client uses)."""
    context: dict[str, common_pb2.Value] = {}
    for key, value in payment.items():
        if key in ("request_id", "card_id", "customer_id"):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            context[key] = common_pb2.Value(double_value=float(value))
        else:
            context[key] = common_pb2.Value(string_value=str(value))
    return inference_pb2.ScoreRequest(
        request_id=str(payment["request_id"]),
        model=MODEL_NAME,
        entity_ids={"card": str(payment["card_id"]), "customer": str(payment["customer_id"])},
        context=context,
    )


class Scenario:
    """One run of the scenario against ``address``; each step is a method, ``run()`` does them all."""

    def __init__(self, address: MeshAddress, config: ScenarioConfig, report: Report = lambda _: None) -> None:
        self.address = address
        self.config = config
        self.report = report
        self._http = httpx.AsyncClient()
        self._started = datetime.now(UTC)

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def generator_config(self) -> GeneratorConfig:
        end = self.config.end or self._started
        return GeneratorConfig(events=self.config.events, seed=self.config.seed, span=self.config.span, end=end)

    async def publish(self) -> PublishSummary:
        async with bank_producer(self.address.kafka_bootstrap) as producer:
            summary = await publish_events(producer, generate_events(self.generator_config), topics=self.address.topics)
        self.report(f"published {summary.total} upstream events in {summary.seconds:.1f}s")
        return summary

    async def wait_ingested(self, summary: ScenarioSummary, baseline: tuple[float, Counter[str], float]) -> None:
        expected = summary.published.total

        async def done() -> bool:
            accepted, reasons, duplicates = await _ingest_counts(self._http, self.address.ingest_admin)
            summary.ingest_accepted = int(accepted - baseline[0])
            summary.dlq_by_reason = reasons - baseline[1]
            summary.duplicates_dropped = int(duplicates - baseline[2])
            seen = summary.ingest_accepted + sum(summary.dlq_by_reason.values()) + summary.duplicates_dropped
            return seen >= expected

        await _poll(
            "ingest taking in every published event", done, self.config.step_timeout_s, "see `aimesh logs ingest`"
        )
        self.report(f"ingest: {summary.ingest_accepted} accepted, {sum(summary.dlq_by_reason.values())} to the DLQ")

    async def _feature_consumed(self) -> float:
        """Canonical records the feature service has handled: applied transactions plus ignored sources."""
        total = 0.0
        for metric in ("aimesh_feature_records_applied", "aimesh_feature_records_ignored"):
            total += sum((await _metric_total(self._http, self.address.feature_admin, metric)).values())
        return total

    async def wait_features(self, expected: int, baseline: float) -> None:
        async def done() -> bool:
            return await self._feature_consumed() - baseline >= expected

        hint = "see `aimesh logs feature`"
        await _poll("the feature service consuming every canonical record", done, self.config.step_timeout_s, hint)
        self.report(f"feature: {expected} canonical records consumed into the online store")

    async def train(self) -> training_pb2.Run:
        extra = {"triton_model_name": self.config.triton_model_name} if self.config.triton_model_name else {}
        spec = training_spec(self.config.run_params, **extra)
        async with open_caller_channel(self.address.training_grpc) as channel:
            stub = training_pb2_grpc.TrainingServiceStub(channel)
            started: training_pb2.StartRunResponse = await stub.StartRun(
                training_pb2.StartRunRequest(spec=spec, trigger="scenario"), timeout=30
            )
            run = started.run
            self.report(f"training run {run.run_id} started")
            finished = {
                training_pb2.RUN_STATUS_SUCCEEDED,
                training_pb2.RUN_STATUS_FAILED,
                training_pb2.RUN_STATUS_CANCELLED,
            }

            async def done() -> bool:
                nonlocal run
                reply: training_pb2.GetRunResponse = await stub.GetRun(
                    training_pb2.GetRunRequest(run_id=run.run_id), timeout=10
                )
                run = reply.run
                return run.status in finished

            await _poll(
                "the training run finishing", done, self.config.step_timeout_s, "see `aimesh logs training`", 1.0
            )
        if run.status != training_pb2.RUN_STATUS_SUCCEEDED:
            raise ScenarioError(
                f"training run {run.run_id} ended {training_pb2.RunStatus.Name(run.status)}: {run.error_message}"
            )
        self.report(f"trained {MODEL_NAME} v{run.model_version}: AUC {run.metrics.get('auc', float('nan')):.3f}")
        return run

    async def wait_routable(self, version: int, probe: Mapping[str, object]) -> None:
        async with open_caller_channel(self.address.inference_grpc) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)

            async def done() -> bool:
                try:
                    reply: inference_pb2.ScoreResponse = await stub.Score(score_request(probe), timeout=5)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                        return False
                    raise
                return bool(reply.model_version == version)

            await _poll(f"inference routing champion to v{version}", done, 120, "see `aimesh logs inference`")

    async def score(self, payments: list[dict[str, object]]) -> list[ScoredPayment]:
        results: list[ScoredPayment] = []
        queue = iter(payments)
        async with open_caller_channel(self.address.inference_grpc) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)

            async def worker() -> None:
                for payment in queue:
                    started = time.perf_counter()
                    try:
                        reply = await stub.Score(score_request(payment), timeout=2.0)
                        results.append(ScoredPayment(payment, reply, None, (time.perf_counter() - started) * 1e3))
                    except grpc.aio.AioRpcError as exc:
                        error = f"{exc.code().name}: {exc.details()}"
                        results.append(ScoredPayment(payment, None, error, (time.perf_counter() - started) * 1e3))

            await asyncio.gather(*(worker() for _ in range(self.config.concurrency)))
        self.report(f"scored {len(results)} payments over gRPC")
        return results

    async def wait_indexed(self, request_ids: list[str]) -> int:
        index = f"{self.address.index_prefix}-predictions"
        async with AsyncElasticsearch(self.address.elasticsearch_url) as es:
            found = 0

            async def done() -> bool:
                nonlocal found
                found = 0
                for start in range(0, len(request_ids), 1000):
                    chunk = request_ids[start : start + 1000]
                    if await es.indices.exists(index=index):
                        await es.indices.refresh(index=index)
                        reply = await es.count(index=index, query={"terms": {"request_id": chunk}})
                        found += int(reply["count"])
                return found >= len(request_ids)

            await _poll(
                "monitor indexing every prediction", done, self.config.step_timeout_s, "see `aimesh logs monitor`", 1.0
            )
        self.report(f"monitor: {found} predictions searchable in Elasticsearch")
        return found

    async def drift(self, version: int) -> monitor_pb2.DriftReport:
        async with open_caller_channel(self.address.monitor_grpc) as channel:
            stub = monitor_pb2_grpc.MonitorServiceStub(channel)
            request = monitor_pb2.GetDriftReportRequest(model_name=MODEL_NAME, model_version=version)
            reply: monitor_pb2.GetDriftReportResponse = await stub.GetDriftReport(request, timeout=30)
            report = reply.report
        self.report(f"monitor: score PSI {report.psi:.4f} over {report.sample_count} live scores")
        return report

    async def run(self) -> ScenarioSummary:
        """Every step in order; raises ScenarioError at the first one that does not complete."""
        timings: dict[str, float] = {}

        def lap(name: str, started: float) -> None:
            timings[name] = time.perf_counter() - started

        for line in await apply_pack(self.address.ingest_grpc, self.address.feature_grpc):
            self.report(f"pack: {line}")
        ingest_baseline = await _ingest_counts(self._http, self.address.ingest_admin)
        feature_baseline = await self._feature_consumed()
        t = time.perf_counter()
        summary = ScenarioSummary(published=await self.publish())
        lap("publish", t)
        t = time.perf_counter()
        await self.wait_ingested(summary, ingest_baseline)
        await self.wait_features(summary.ingest_accepted, feature_baseline)
        lap("ingest+features", t)
        t = time.perf_counter()
        summary.run = await self.train()
        lap("train+deploy", t)
        payments = list(payment_requests(self.generator_config, self.config.payments, datetime.now(UTC)))
        await self.wait_routable(summary.run.model_version, payments[0])
        t = time.perf_counter()
        summary.scored = await self.score(payments)
        lap("score", t)
        ok_ids = [s.response.request_id for s in summary.scored if s.response is not None]
        t = time.perf_counter()
        summary.indexed_predictions = await self.wait_indexed(ok_ids)
        lap("index", t)
        summary.drift = await self.drift(summary.run.model_version)
        summary.seconds = timings
        return summary
