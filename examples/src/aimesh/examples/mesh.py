"""What every example pack shares: publishing upstream records and driving the mesh through its public seams.

A pack's scenario uses only what a client outside the mesh has: Kafka (``send_pipelined``), the
services' gRPC APIs (``apply_pack``, ``run_training``), their ``/metrics`` (``ingest_counts``,
``feature_consumed``) and Elasticsearch (``count_indexed``). Every wait has a limit and raises
``ScenarioError`` naming what did not happen and where to look.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import yaml
from elasticsearch import AsyncElasticsearch
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from aimesh.api.training.v1 import training_pb2, training_pb2_grpc
from aimesh.core.bus import EventProducer
from aimesh.core.channels import TOKEN_FILE_ENV, open_caller_channel
from aimesh.feature.operations import apply_file
from aimesh.ingest.operations import apply_sources

Report = Callable[[str], None]
LabelSet = tuple[tuple[str, str], ...]


class ScenarioError(RuntimeError):
    """A step of the scenario did not complete; the message names the step, what was seen and the fix."""


class UpstreamRecord(Protocol):
    """What ``send_pipelined`` needs of a record: its payload and Kafka key."""

    @property
    def value(self) -> bytes: ...

    @property
    def key(self) -> str: ...


R = TypeVar("R", bound=UpstreamRecord)


async def send_pipelined(
    producer: EventProducer,
    records: Iterable[R],
    topic_of: Callable[[R], str],
    on_settled: Callable[[R, Any], None],
    *,
    max_in_flight: int = 10_000,
) -> None:
    """Send every record as the upstream system would (raw value, its key, no headers), pipelined.

    At most ``max_in_flight`` are unacknowledged; ``on_settled(record, metadata)`` is called in send
    order once Kafka acknowledged it. Returns when every record is acknowledged; raises aiokafka's
    error if one is refused (records queued before it may or may not have been written).
    """
    in_flight: deque[tuple[asyncio.Future[Any], R]] = deque()

    async def settle_oldest() -> None:
        fut, record = in_flight.popleft()
        on_settled(record, await fut)

    for record in records:
        fut = await producer.send_raw(topic_of(record), record.value, key=record.key, headers=())
        in_flight.append((fut, record))
        if len(in_flight) >= max_in_flight:
            await settle_oldest()
    while in_flight:
        await settle_oldest()


def use_stack_token(home: Path) -> None:
    """Send the local stack's demo token (``<home>/auth/demo.token``, written by ``aimesh up``) when
    ``$AIMESH_AUTH_TOKEN_FILE`` is unset and that file exists, so a demo authenticates without setup."""
    demo = home / "auth" / "demo.token"
    if not os.environ.get(TOKEN_FILE_ENV) and demo.is_file():
        os.environ[TOKEN_FILE_ENV] = str(demo)


def upstream_producer(bootstrap: str, source: str) -> EventProducer:
    """A producer tuned for bulk upstream traffic (bigger batches); use it as an async context manager."""
    return EventProducer(bootstrap, source=source, linger_ms=20, max_batch_size=256 * 1024)


async def metric_total(client: httpx.AsyncClient, admin: str, metric: str) -> dict[LabelSet, float]:
    """Samples of ``metric`` (a counter, without ``_total``) from a service's ``/metrics``, by label set."""
    text = (await client.get(f"{admin}/metrics", timeout=5)).text
    values: dict[LabelSet, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == metric:
            for sample in family.samples:
                if sample.name == f"{metric}_total":
                    values[tuple(sorted(sample.labels.items()))] = sample.value
    return values


async def ingest_counts(client: httpx.AsyncClient, admin: str) -> tuple[float, Counter[str], float]:
    """Ingest's records accepted, rejected by reason (the DLQ) and duplicates dropped, all sources."""
    accepted = await metric_total(client, admin, "aimesh_ingest_records_accepted")
    rejected = await metric_total(client, admin, "aimesh_ingest_records_rejected")
    duplicates = await metric_total(client, admin, "aimesh_ingest_duplicates_dropped")
    reasons: Counter[str] = Counter()
    for labels, value in rejected.items():
        reasons[dict(labels).get("reason", "?")] += int(value)
    return sum(accepted.values()), reasons, sum(duplicates.values())


async def feature_consumed(client: httpx.AsyncClient, admin: str) -> float:
    """Canonical records the feature service has handled: applied records plus ignored sources."""
    total = 0.0
    for metric in ("aimesh_feature_records_applied", "aimesh_feature_records_ignored"):
        total += sum((await metric_total(client, admin, metric)).values())
    return total


async def poll(
    what: str, check: Callable[[], Awaitable[object]], limit_s: float, hint: str, interval: float = 0.5
) -> None:
    """Await ``check()`` (truthy when done) until it holds; ScenarioError after ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    last: object = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return
        await asyncio.sleep(interval)
    raise ScenarioError(f"{what} did not happen within {limit_s:.0f}s (last seen: {last!r}); {hint}")


async def apply_pack(pack: Path, ingest_grpc: str, feature_grpc: str) -> list[str]:
    """Register ``pack/sources.yaml`` with ingest and apply ``pack/features.yaml`` to the feature service,
    as ``aimesh ingest apply`` / ``aimesh feature apply`` do; returns one line per change. Idempotent."""
    lines = [
        f"source {c.name}: {c.action} (v{c.version})"
        for c in await apply_sources(ingest_grpc, (pack / "sources.yaml").read_text("utf-8"), dry_run=False)
    ]
    response = await apply_file(feature_grpc, (pack / "features.yaml").read_text("utf-8"), dry_run=False)
    lines += [f"{c.kind} {c.name}: v{c.version}" for c in response.changes]
    return lines


def read_run_spec(path: Path, params: Mapping[str, str] | None = None, **fields: str) -> training_pb2.RunSpec:
    """The ``RunSpec`` of a pack's ``training.yaml`` (protobuf's JSON mapping of field names); ``params``
    are added to its trainer parameters, ``fields`` override top-level string fields."""
    document = yaml.safe_load(path.read_text("utf-8"))
    document.setdefault("params", {}).update(params or {})
    document.update(fields)
    spec = training_pb2.RunSpec()
    json_format.ParseDict(document, spec)
    return spec


_FINISHED = frozenset(
    {training_pb2.RUN_STATUS_SUCCEEDED, training_pb2.RUN_STATUS_FAILED, training_pb2.RUN_STATUS_CANCELLED}
)


async def run_training(
    training_grpc: str, spec: training_pb2.RunSpec, *, limit_s: float, report: Report, trigger: str = "scenario"
) -> training_pb2.Run:
    """Start a run (``TrainingService.StartRun``) and wait until it ends; ScenarioError unless it SUCCEEDED."""
    async with open_caller_channel(training_grpc) as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        started: training_pb2.StartRunResponse = await stub.StartRun(
            training_pb2.StartRunRequest(spec=spec, trigger=trigger), timeout=30
        )
        run = started.run
        report(f"training run {run.run_id} started")

        async def done() -> bool:
            nonlocal run
            reply: training_pb2.GetRunResponse = await stub.GetRun(
                training_pb2.GetRunRequest(run_id=run.run_id), timeout=10
            )
            run = reply.run
            return run.status in _FINISHED

        await poll("the training run finishing", done, limit_s, "see `aimesh logs training`", 1.0)
    if run.status != training_pb2.RUN_STATUS_SUCCEEDED:
        raise ScenarioError(
            f"training run {run.run_id} ended {training_pb2.RunStatus.Name(run.status)}: {run.error_message}"
        )
    return run


async def count_indexed(elasticsearch_url: str, index: str, request_ids: list[str], *, limit_s: float) -> int:
    """Wait until every one of ``request_ids`` is a searchable document of ``index``; returns how many are."""
    async with AsyncElasticsearch(elasticsearch_url) as es:
        found = 0

        async def done() -> bool:
            nonlocal found
            found = 0
            if not await es.indices.exists(index=index):
                return False
            await es.indices.refresh(index=index)
            for start in range(0, len(request_ids), 1000):
                chunk = request_ids[start : start + 1000]
                reply = await es.count(index=index, query={"terms": {"request_id": chunk}})
                found += int(reply["count"])
            return found >= len(request_ids)

        await poll("monitor indexing every prediction", done, limit_s, "see `aimesh logs monitor`", 1.0)
    return found
