"""The retail next-item scenario, driven from outside the mesh exactly as a retailer would: Kafka in, gRPC out.

``run_scenario`` (``Scenario.run``) applies the pack, publishes the catalogue and the users' sessions,
waits until ingest and feature have taken them in (read from their ``/metrics``), trains and deploys the
next-item model through ``TrainingService`` (leave-one-out HR@10 / NDCG@10 against popularity in the
same run), asks ``InferenceService.Recommend`` for the top 10 of known users (their purchases
excluded, some with the item they look at now as context) and of a few unknown ones (the popular-items
fallback), and waits until monitor indexed every prediction in Elasticsearch. ``make demo`` prints
its summary. Every wait has a timeout and raises ``ScenarioError`` naming what did not happen.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import httpx

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.api.training.v1 import training_pb2
from aimesh.core.channels import open_caller_channel
from aimesh.examples.banking.scenario import MeshAddress
from aimesh.examples.mesh import (
    Report,
    ScenarioError,
    count_indexed,
    feature_consumed,
    ingest_counts,
    poll,
    run_training,
)
from aimesh.examples.retail.generator import GeneratorConfig, generate_events
from aimesh.examples.retail.model import EventType, GeneratedEvent, Stream
from aimesh.examples.retail.pack import apply_pack, training_spec
from aimesh.examples.retail.publisher import DEFAULT_TOPICS, PublishSummary, publish_events, retail_producer

MODEL_NAME = "next_item"
USER_ENTITY = "user"
K = 10
METRICS = ("hr@10", "ndcg@10", "hr@10_full", "ndcg@10_full")
"""The run metrics the summary shows, each next to its ``popularity_`` baseline."""

__all__ = [
    "MODEL_NAME",
    "MeshAddress",
    "Recommended",
    "Scenario",
    "ScenarioConfig",
    "ScenarioError",
    "ScenarioSummary",
    "recommend_requests",
]


@dataclass(frozen=True)
class ScenarioConfig:
    events: int = 30_000
    """Interactions to publish (the catalogue comes on top)."""
    seed: int = 42
    requests: int = 1_000
    """Recommend calls of known users (plus ``cold_start_requests`` of unknown ones)."""
    cold_start_requests: int = 20
    concurrency: int = 4
    span: timedelta = timedelta(days=30)
    end: datetime | None = None
    """Time of the last interaction (default: when the scenario starts)."""
    step_timeout_s: float = 600.0
    run_params: Mapping[str, str] = field(default_factory=dict)
    triton_model_name: str = ""
    """Triton model of the trained version; default the model name (the pack's ``training.yaml``)."""


@dataclass(frozen=True)
class Recommended:
    request: inference_pb2.RecommendRequest
    response: inference_pb2.RecommendResponse | None
    error: str | None
    latency_ms: float


@dataclass
class ScenarioSummary:
    published: PublishSummary
    ingest_accepted: int = 0
    dlq_by_reason: Counter[str] = field(default_factory=Counter)
    duplicates_dropped: int = 0
    run: training_pb2.Run | None = None
    recommended: list[Recommended] = field(default_factory=list)
    indexed_predictions: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def answered(self) -> list[inference_pb2.RecommendResponse]:
        return [r.response for r in self.recommended if r.response is not None]

    @property
    def latencies_ms(self) -> list[float]:
        return sorted(r.latency_ms for r in self.recommended if r.response is not None)

    def latency_percentile(self, q: float) -> float:
        values = self.latencies_ms
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    @property
    def errors(self) -> Counter[str]:
        return Counter(r.error.split(":")[0] for r in self.recommended if r.error is not None)

    @property
    def fallbacks(self) -> int:
        return sum(r.fallback for r in self.answered)

    def metric(self, name: str) -> float:
        """A run metric (``nan`` when the run has none of that name)."""
        return self.run.metrics.get(name, float("nan")) if self.run is not None else float("nan")


@dataclass
class _Histories:
    """What the published stream says about each user: purchases (to exclude) and the newest viewed item."""

    purchased: dict[str, set[str]] = field(default_factory=dict)
    last_viewed: dict[str, str] = field(default_factory=dict)

    def watch(self, events: Iterable[GeneratedEvent]) -> Iterator[GeneratedEvent]:
        for event in events:
            if event.malformed is None and event.user_id:
                if event.event_type is EventType.PURCHASE:
                    self.purchased.setdefault(event.user_id, set()).add(event.item_id)
                elif event.event_type is EventType.VIEW:
                    self.last_viewed[event.user_id] = event.item_id
            yield event


def recommend_requests(
    purchased: Mapping[str, set[str]],
    last_viewed: Mapping[str, str],
    *,
    count: int,
    cold_start: int,
    seed: int,
) -> list[inference_pb2.RecommendRequest]:
    """``count`` Recommend requests of users drawn from ``purchased`` (their purchases excluded; every other
    one with the item the user viewed last as context), then ``cold_start`` of users nobody has seen."""
    rng = random.Random(seed)  # noqa: S311  # which users to ask for, not cryptography
    users = sorted(purchased)
    requests = []
    for n in range(count if users else 0):
        user = rng.choice(users)
        context = [last_viewed[user]] if n % 2 and user in last_viewed else []
        requests.append(
            inference_pb2.RecommendRequest(
                request_id=f"rec-{seed}-{n:06d}",
                model=MODEL_NAME,
                entity_ids={USER_ENTITY: user},
                k=K,
                exclude_items=sorted(purchased[user]),
                context_items=context,
            )
        )
    for n in range(cold_start):
        requests.append(
            inference_pb2.RecommendRequest(
                request_id=f"rec-{seed}-cold-{n:04d}",
                model=MODEL_NAME,
                entity_ids={USER_ENTITY: f"u-never-seen-{seed}-{n}"},
                k=K,
            )
        )
    return requests


class Scenario:
    """One run of the scenario against ``address`` (its endpoints; the retail topics are ``topics``)."""

    def __init__(
        self,
        address: MeshAddress,
        config: ScenarioConfig,
        report: Report = lambda _: None,
        *,
        topics: Mapping[Stream, str] = DEFAULT_TOPICS,
    ) -> None:
        self.address = address
        self.config = config
        self.report = report
        self.topics = dict(topics)
        self.histories = _Histories()
        self._http = httpx.AsyncClient()
        self._started = datetime.now(UTC)

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def generator_config(self) -> GeneratorConfig:
        end = self.config.end or self._started
        return GeneratorConfig(events=self.config.events, seed=self.config.seed, span=self.config.span, end=end)

    async def publish(self) -> PublishSummary:
        events = self.histories.watch(generate_events(self.generator_config))
        async with retail_producer(self.address.kafka_bootstrap) as producer:
            summary = await publish_events(producer, events, topics=self.topics)
        self.report(f"published {summary.total} retail records in {summary.seconds:.1f}s")
        return summary

    async def wait_ingested(self, summary: ScenarioSummary, baseline: tuple[float, Counter[str], float]) -> None:
        expected = summary.published.total

        async def done() -> bool:
            accepted, reasons, duplicates = await ingest_counts(self._http, self.address.ingest_admin)
            summary.ingest_accepted = int(accepted - baseline[0])
            summary.dlq_by_reason = reasons - baseline[1]
            summary.duplicates_dropped = int(duplicates - baseline[2])
            seen = summary.ingest_accepted + sum(summary.dlq_by_reason.values()) + summary.duplicates_dropped
            return seen >= expected

        hint = "see `aimesh logs ingest`"
        await poll("ingest taking in every published record", done, self.config.step_timeout_s, hint)
        self.report(f"ingest: {summary.ingest_accepted} accepted, {sum(summary.dlq_by_reason.values())} to the DLQ")

    async def wait_features(self, expected: int, baseline: float) -> None:
        async def done() -> bool:
            return await feature_consumed(self._http, self.address.feature_admin) - baseline >= expected

        hint = "see `aimesh logs feature`"
        await poll("the feature service consuming every canonical record", done, self.config.step_timeout_s, hint)
        self.report(f"feature: {expected} canonical records consumed into the online store")

    async def train(self) -> training_pb2.Run:
        extra = {"triton_model_name": self.config.triton_model_name} if self.config.triton_model_name else {}
        spec = training_spec(self.config.run_params, **extra)
        run = await run_training(
            self.address.training_grpc, spec, limit_s=self.config.step_timeout_s, report=self.report
        )
        metrics = run.metrics
        self.report(
            f"trained {MODEL_NAME} v{run.model_version}: HR@10 {metrics.get('hr@10', float('nan')):.3f} vs "
            f"popularity {metrics.get('popularity_hr@10', float('nan')):.3f}"
        )
        if not metrics.get("hr@10", 0.0) > metrics.get("popularity_hr@10", 0.0):
            raise ScenarioError(
                f"{MODEL_NAME} v{run.model_version} did not beat popularity on HR@10 ({dict(metrics)}), so it was "
                "not promoted to champion; see `aimesh logs training`"
            )
        return run

    async def wait_routable(self, version: int, probe: inference_pb2.RecommendRequest) -> None:
        async with open_caller_channel(self.address.inference_grpc) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)

            async def done() -> bool:
                try:
                    reply: inference_pb2.RecommendResponse = await stub.Recommend(probe, timeout=5)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                        return False
                    raise
                return bool(reply.model_version == version)

            await poll(f"inference routing champion to v{version}", done, 120, "see `aimesh logs inference`")

    async def recommend(self, requests: list[inference_pb2.RecommendRequest]) -> list[Recommended]:
        results: list[Recommended] = []
        queue = iter(requests)
        async with open_caller_channel(self.address.inference_grpc) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)

            async def worker() -> None:
                for request in queue:
                    started = time.perf_counter()
                    try:
                        reply = await stub.Recommend(request, timeout=2.0)
                        results.append(Recommended(request, reply, None, (time.perf_counter() - started) * 1e3))
                    except grpc.aio.AioRpcError as exc:
                        error = f"{exc.code().name}: {exc.details()}"
                        results.append(Recommended(request, None, error, (time.perf_counter() - started) * 1e3))

            await asyncio.gather(*(worker() for _ in range(self.config.concurrency)))
        self.report(f"asked Recommend {len(results)} times over gRPC")
        return results

    async def wait_indexed(self, request_ids: list[str]) -> int:
        index = f"{self.address.index_prefix}-predictions"
        found = await count_indexed(
            self.address.elasticsearch_url, index, request_ids, limit_s=self.config.step_timeout_s
        )
        self.report(f"monitor: {found} predictions searchable in Elasticsearch")
        return found

    async def run(self) -> ScenarioSummary:
        """Every step in order; raises ScenarioError at the first one that does not complete."""
        timings: dict[str, float] = {}

        def lap(name: str, started: float) -> None:
            timings[name] = time.perf_counter() - started

        for line in await apply_pack(self.address.ingest_grpc, self.address.feature_grpc):
            self.report(f"pack: {line}")
        ingest_baseline = await ingest_counts(self._http, self.address.ingest_admin)
        feature_baseline = await feature_consumed(self._http, self.address.feature_admin)
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
        requests = recommend_requests(
            self.histories.purchased,
            self.histories.last_viewed,
            count=self.config.requests,
            cold_start=self.config.cold_start_requests,
            seed=self.config.seed,
        )
        if not requests:
            raise ScenarioError("no user purchased anything: nothing to ask Recommend for (publish more events)")
        probe = inference_pb2.RecommendRequest()
        probe.CopyFrom(requests[0])
        probe.request_id = f"{probe.request_id}-probe"
        await self.wait_routable(summary.run.model_version, probe)
        t = time.perf_counter()
        summary.recommended = await self.recommend(requests)
        lap("recommend", t)
        ok_ids = [r.request_id for r in summary.answered]
        t = time.perf_counter()
        summary.indexed_predictions = await self.wait_indexed(ok_ids)
        lap("index", t)
        summary.seconds = timings
        return summary
