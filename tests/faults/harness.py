"""One fault scenario: steady load, the fault, then the checks every scenario shares, with the counts printed.

``run_scenario`` starts the load (``tests.faults.load``), lets it run ``warmup_s``, runs the fault (which
marks ``down`` and ``back`` on the timeline), keeps the load on for ``after_s``, stops generating, waits
until every upstream event is acknowledged and the mesh has converged, and returns a ``Report``. The
report's ``failures`` name every property that did not hold; ``assert_held`` fails the test with all of
them (not only the first) after the counts are printed.

Properties checked (limits are the module constants):

- lake: every acknowledged upstream event exactly once (by event id), within ``CONVERGE_S`` of the load
  stopping; the canonical topic: each event exactly once (read committed);
- online store: each card's ``card_txn_count_24h`` equals its acknowledged events (0 lost, 0 double-counted);
- Elasticsearch: a prediction document (id = event id) for every OK ``Score``; the predictions topic holds
  each of them (duplicates there are counted, not failed: delivery is at least once, the document is keyed);
- ``Score``: no UNKNOWN or INTERNAL; OK again within ``recover_s`` of the fault's end; inference's
  readiness agrees with what ``Score`` does (at most ``READINESS_SLACK`` one-second samples disagree);
- liveness: no 503 from any service at any time (a dependency being down is not a wedged process);
- PII: no raw card number used by the load in any aimesh topic, the lake, the SQLite files, Elasticsearch
  or a service log.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_scan

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.api.ingest.v1 import events_pb2 as ingest_events
from aimesh.core import lake
from tests.faults.load import SOURCE, HealthProbe, Scorer, Upstream, make_cards
from tests.faults.stack import FaultStack

CONVERGE_S = 90.0
"""After the load stops: the lake, the online store and Elasticsearch hold every effect within this."""
READINESS_SLACK = 3
"""One-second samples in which inference's readiness may disagree with Score (transitions)."""
PAN_RE = re.compile(rb"(?<![0-9])[0-9]{13,19}(?![0-9])")
RECORDS_TOPIC = "aimesh.ingest.records.v1"
PREDICTIONS_TOPIC = "aimesh.inference.predictions.v1"
PREDICTIONS_INDEX = "aimesh-predictions"
COUNT_FEATURE = "card_txn_stats:card_txn_count_24h"


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode(errors="replace")
        return None


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of every topic (internal ones left out)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if not t.startswith("__")]
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await consumer.stop()


async def read_since(
    bootstrap: str, since: dict[TopicPartition, int], *, topics: Iterable[str] | None = None
) -> list[KafkaRecord]:
    """Committed records of ``topics`` (default: every aimesh.* topic) from ``since`` (0 where absent) to the end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=64 * 1024 * 1024,
        fetch_max_bytes=128 * 1024 * 1024,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        wanted = set(topics) if topics is not None else {t for t in await consumer.topics() if t.startswith("aimesh.")}
        partitions = [TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, since.get(tp, 0))
        records: list[KafkaRecord] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            behind = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            batch = await consumer.getmany(*behind, timeout_ms=1000)
            for tp_records in batch.values():
                records.extend(
                    KafkaRecord(r.topic, r.partition, r.offset, r.key or b"", r.value or b"", tuple(r.headers or ()))
                    for r in tp_records
                )
        return records
    finally:
        await consumer.stop()


def lake_event_ids(stack: FaultStack, prefix: str, source: str = SOURCE) -> Counter[str]:
    """How often each event id starting with ``prefix`` is in the lake."""
    table = lake.dataset(stack.lake_root, source)
    if "event_id" not in table.schema.names:
        return Counter()
    ids = table.to_table(columns=["event_id"]).column("event_id").to_pylist()
    return Counter(i for i in ids if isinstance(i, str) and i.startswith(prefix))


async def online_counts(stack: FaultStack, cards: list[str]) -> dict[str, float]:
    async with stack.channel("feature") as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        reply = await stub.GetOnlineFeatures(
            feature_pb2.GetOnlineFeaturesRequest(features=[COUNT_FEATURE], entity_ids=cards),
            timeout=10,
            metadata=stack.metadata or None,
        )
    return {row.entity_id: row.values[0].value.double_value for row in reply.rows}


async def documents_found(es: AsyncElasticsearch, index: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    if not ids or not await es.indices.exists(index=index):
        return found
    for start in range(0, len(ids), 1000):
        reply = await es.mget(index=index, ids=ids[start : start + 1000], source=False)
        found.update(d["_id"] for d in reply["docs"] if d.get("found"))
    return found


def leaked(blob: bytes, pans: set[str]) -> set[str]:
    return {m.decode() for m in PAN_RE.findall(blob)} & pans


async def pan_leaks(
    stack: FaultStack, since: dict[TopicPartition, int], started: datetime, pans: set[str]
) -> list[str]:
    """Where a raw card number of ``pans`` was found: aimesh topics, lake, SQLite files, Elasticsearch, logs."""
    where: list[str] = []
    for r in await read_since(stack.bootstrap, since):
        blob = r.key + r.value + b"".join(k.encode() + v for k, v in r.headers)
        if found := leaked(blob, pans):
            where.append(f"topic {r.topic}[{r.partition}]@{r.offset}: {len(found)} PAN(s)")
    lake_root = stack.lake_root
    if lake_root.exists():
        for source_dir in sorted(p for p in lake_root.iterdir() if p.is_dir()):
            rows = lake.dataset(lake_root, source_dir.name).to_table().to_pylist()
            if found := leaked(orjson.dumps(rows, default=str), pans):
                where.append(f"lake {source_dir.name}: {len(found)} PAN(s)")
    home = stack.paths.home
    stored = [
        *(home / "data").glob("*.db*"),  # the services' SQLite state
        *(p for p in (home / "data" / "dead-letters").rglob("*") if p.is_file()),  # oversized dead letters
        *(p for p in (home / "spool").rglob("*") if p.is_file()),  # the services' spools
    ]
    for path in stored:
        if found := leaked(path.read_bytes(), pans):
            where.append(f"{path.relative_to(home)}: {len(found)} PAN(s)")
    for log in stack.paths.logs.glob("*.log"):
        if found := leaked(log.read_bytes(), pans):
            where.append(f"log {log.name}: {len(found)} PAN(s)")
    where += await _elasticsearch_leaks(stack, started, pans)
    return where


async def _elasticsearch_leaks(stack: FaultStack, started: datetime, pans: set[str]) -> list[str]:
    """Documents indexed since ``started`` holding a PAN of ``pans``; a sweep that fails three times is
    itself reported (a leak check that could not look is not a pass)."""
    error: Exception | None = None
    for _ in range(3):
        where: list[str] = []
        try:
            async with AsyncElasticsearch(stack.elasticsearch.url, request_timeout=30) as es:
                await es.indices.refresh(index="aimesh-*")
                query = {"query": {"range": {"@timestamp": {"gte": started.isoformat()}}}}
                async for hit in async_scan(es, index="aimesh-*", query=query, size=2000):
                    if found := leaked(orjson.dumps(hit["_source"]), pans):
                        where.append(f"Elasticsearch {hit['_index']}/{hit['_id']}: {len(found)} PAN(s)")
            return where
        except Exception as exc:  # any failure of the sweep: retried, then reported
            error = exc
            await asyncio.sleep(2.0)
    return [f"Elasticsearch not swept: {error!r}"]


@dataclass
class Report:
    name: str
    counts: dict[str, Any] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    """When something did not hold: the services' newest warnings and errors of the scenario (see
    ``service_warnings``), printed and carried in the assertion so a CI log explains the failure."""

    def check(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)

    def print(self) -> None:
        lines = [f"\n=== fault scenario: {self.name}"]
        lines.append("timeline: " + ", ".join(f"{label} @{t:.1f}s" for t, label in self.timeline))
        for key, value in self.counts.items():
            lines.append(f"  {key}: {value}")
        lines.append(f"  held: {'all' if not self.failures else 'NOT ' + str(len(self.failures))}")
        for failure in self.failures:
            lines.append(f"  FAILED: {failure}")
        lines.extend(f"  log: {line}" for line in self.diagnostics)
        print("\n".join(lines), flush=True)

    def assert_held(self) -> None:
        """Fails with every failure, the timeline, the counts and the diagnostics (a CI log may show only
        the assertion)."""
        assert not self.failures, (
            f"{self.name}: "
            + "; ".join(self.failures)
            + "; timeline: "
            + ", ".join(f"{label} @{t:.1f}s" for t, label in self.timeline)
            + "; counts: "
            + "; ".join(f"{k}: {v}" for k, v in self.counts.items())
            + "; diagnostics: "
            + " | ".join(self.diagnostics)
        )


async def group_lags(bootstrap: str) -> list[str]:
    """Per consumer group: its committed offsets' lag behind the end of each topic it committed on
    (summed over partitions), e.g. ``aimesh-ingest bank.card-transactions lag 0``; what a stuck consumer
    looks like from the broker's side."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        out: list[str] = []
        for group, _ in sorted(await admin.list_consumer_groups()):
            committed = await admin.list_consumer_group_offsets(group)
            ends = await consumer.end_offsets(list(committed)) if committed else {}
            lag: Counter[str] = Counter()
            for tp, meta in committed.items():
                lag[tp.topic] += max(ends.get(tp, 0) - meta.offset, 0)
            out.extend(f"group {group} {topic} lag {n}" for topic, n in sorted(lag.items()))
        return out
    finally:
        await consumer.stop()
        await admin.close()


CONSUMER_GAUGES = (
    "aimesh_consumer_lag",
    "aimesh_consumer_partition_stalled_seconds",
    "aimesh_consumer_retry_attempts",
    "aimesh_consumer_waiting_on_dependency",
)


async def consumer_states(stack: FaultStack) -> list[str]:
    """Per service: its readiness body and the nonzero consumer gauges of its ``/metrics`` (lag, stall,
    retries): what a stuck consumer looks like from the service's side."""
    out: list[str] = []
    async with httpx.AsyncClient(timeout=5) as client:
        for name in sorted(stack.services):
            admin = stack.admin(name)
            try:
                ready = await client.get(f"{admin}/readyz")
                metrics = await client.get(f"{admin}/metrics")
            except httpx.HTTPError as exc:
                out.append(f"{name}: admin not answering: {exc!r}")
                continue
            gauges = [
                line
                for line in metrics.text.splitlines()
                if line.startswith(CONSUMER_GAUGES) and not line.rstrip().endswith((" 0.0", " 0"))
            ]
            out.append(f"{name}: ready {ready.status_code} {ready.text[:200]}; " + (", ".join(gauges[:12]) or "no lag"))
    return out


def service_warnings(stack: FaultStack, since: datetime, *, per_service: int = 3, width: int = 240) -> list[str]:
    """The newest distinct warning/error messages (ECS JSON log lines) of each service since ``since``."""
    out: list[str] = []
    for name in sorted(stack.services):
        path = stack.paths.logs / f"{name}.log"
        if not path.exists():
            continue
        seen: dict[str, str] = {}
        for raw in path.read_bytes().splitlines()[-20000:]:
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(entry, dict) or entry.get("log.level") not in ("warning", "error", "critical"):
                continue
            if str(entry.get("@timestamp", "")) < since.isoformat()[:23]:
                continue
            message = str(entry.get("message", ""))
            error = entry.get("error")
            detail = f"{message}: {error.get('message', '')}" if isinstance(error, dict) else message
            seen.pop(message, None)
            seen[message] = " ".join(f"{name} {entry.get('@timestamp', '')[11:23]} {detail}".split())[:width]
        out.extend(list(seen.values())[-per_service:])
    return out


Fault = Callable[[Callable[[str], None]], Awaitable[None]]


async def run_scenario(
    stack: FaultStack,
    name: str,
    fault: Fault,
    *,
    rate: float,
    score_rate: float,
    warmup_s: float = 6.0,
    after_s: float = 15.0,
    recover_s: float = 10.0,
    cards: int = 60,
    down_service: str | None = None,
) -> Report:
    """Load + ``fault`` + checks (module doc). ``down_service`` is the service the fault kills, whose own
    health is not sampled while it is down."""
    prefix = f"{name}-{int(time.time())}"
    report = Report(name)
    t0 = time.monotonic()
    started = datetime.now(UTC)

    def mark(label: str) -> None:
        report.timeline.append((time.monotonic() - t0, label))
        stack.note(f"{name}: {label} at {time.monotonic() - t0:.1f}s")

    since = await end_offsets(stack.bootstrap)
    card_list = make_cards(prefix, cards, random.Random(hash(prefix) & 0xFFFF))
    upstream = Upstream(stack.bootstrap, prefix, card_list, rate)
    scorer = Scorer(stack, prefix, card_list, score_rate, t0)
    health = HealthProbe(stack, t0)
    tasks = [
        asyncio.create_task(upstream.generate()),
        asyncio.create_task(upstream.deliver()),
        asyncio.create_task(scorer.run()),
        asyncio.create_task(health.run()),
    ]
    try:
        await asyncio.sleep(warmup_s)
        await fault(mark)
        await asyncio.sleep(after_s)
        upstream.stop_generating()
        mark("load stopped")
        scorer.stop()
        await asyncio.wait([tasks[2]], timeout=10)
        deadline = time.monotonic() + 120
        while not upstream.drained and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        mark("upstream drained" if upstream.drained else f"{len(upstream.pending)} never acknowledged")
        await converge(stack, report, upstream, scorer, t0, mark)
    finally:
        upstream.stop_generating()
        scorer.stop()
        health.stop()
        await asyncio.wait(tasks, timeout=30)
        for task in tasks:
            task.cancel()
    check_scores(report, scorer, health, down_service, recover_s)
    check_health(report, health, down_service)
    since_topics = {tp: o for tp, o in since.items()}
    records = await read_since(stack.bootstrap, since_topics, topics=[RECORDS_TOPIC, PREDICTIONS_TOPIC])
    check_topics(report, records, upstream, scorer, prefix)
    leaks = await pan_leaks(stack, since_topics, started, upstream.pans)
    report.counts["raw PANs found"] = leaks[:10] or 0
    report.check(not leaks, f"raw card numbers leaked: {leaks[:5]}")
    if report.failures:
        report.diagnostics = service_warnings(stack, started)
        for snapshot in (group_lags(stack.bootstrap), consumer_states(stack)):
            try:
                report.diagnostics.extend(await asyncio.wait_for(snapshot, timeout=30))
            except Exception as exc:
                report.diagnostics.append(f"diagnostic not read: {exc!r}")
    report.print()
    return report


async def converge(
    stack: FaultStack,
    report: Report,
    upstream: Upstream,
    scorer: Scorer,
    t0: float,
    mark: Callable[[str], None],
) -> None:
    """Wait until the lake, Elasticsearch and the online store hold every effect (``CONVERGE_S``)."""
    expected = set(upstream.acked)
    ok_ids = [o.event_id for o in scorer.outcomes if o.code == "OK" and o.event_id]
    per_card = Counter(upstream.acked.values())
    deadline = time.monotonic() + CONVERGE_S
    in_lake: Counter[str] = Counter()
    indexed: set[str] = set()
    online: dict[str, float] = {}
    lake_done = es_done = online_done = False
    async with AsyncElasticsearch(stack.elasticsearch.url, request_timeout=10) as es:
        while time.monotonic() < deadline and not (lake_done and es_done and online_done):
            if not lake_done:
                in_lake = await asyncio.to_thread(lake_event_ids, stack, upstream.prefix)
                if expected <= set(in_lake):
                    lake_done = True
                    mark("lake complete")
            if not es_done:
                with contextlib.suppress(Exception):
                    await es.indices.refresh(index=PREDICTIONS_INDEX)
                    indexed = await documents_found(es, PREDICTIONS_INDEX, ok_ids)
                    if len(indexed) == len(set(ok_ids)):
                        es_done = True
                        mark("Elasticsearch complete")
            if lake_done and not online_done:
                with contextlib.suppress(Exception):
                    online = await online_counts(stack, sorted(per_card))
                    if all(online.get(c) == float(n) for c, n in per_card.items()):
                        online_done = True
                        mark("online store complete")
            await asyncio.sleep(2.0)
    in_lake = await asyncio.to_thread(lake_event_ids, stack, upstream.prefix)
    lost = expected - set(in_lake)
    dups = sum(n - 1 for n in in_lake.values() if n > 1)
    unexpected = set(in_lake) - expected
    off = {c: (online.get(c), n) for c, n in per_card.items() if online.get(c) != float(n)}
    report.counts.update(
        {
            "events generated / acknowledged": f"{upstream.generated} / {len(expected)}",
            "send failures (re-sent) / producer restarts": f"{upstream.send_failures} / {upstream.producer_restarts}",
            "lake: present / lost / duplicated / unacknowledged-but-present": (
                f"{len(expected & set(in_lake))} / {len(lost)} / {dups} / {len(unexpected)}"
            ),
            "online store: cards checked / wrong count": f"{len(per_card)} / {len(off)}",
            "Elasticsearch: OK Score predictions indexed / missing": (
                f"{len(indexed)} / {len(set(ok_ids)) - len(indexed)}"
            ),
        }
    )
    report.check(not lost, f"{len(lost)} acknowledged events not in the lake (e.g. {sorted(lost)[:3]})")
    report.check(dups == 0, f"{dups} duplicated lake rows")
    report.check(not off, f"{len(off)} cards with a wrong online count (online, expected): {list(off.items())[:3]}")
    missing = set(ok_ids) - indexed
    report.check(not missing, f"{len(missing)} OK Score calls have no prediction in Elasticsearch")
    report.check(not upstream.pending, f"{len(upstream.pending)} upstream events never acknowledged by Kafka")


def check_scores(report: Report, scorer: Scorer, health: HealthProbe, down: str | None, recover_s: float) -> None:
    codes = Counter(o.code for o in scorer.outcomes)
    report.counts["Score outcomes"] = dict(codes)
    bad = codes.get("UNKNOWN", 0) + codes.get("INTERNAL", 0)
    details = Counter(o.detail[:80] for o in scorer.outcomes if o.code in ("UNKNOWN", "INTERNAL"))
    report.check(bad == 0, f"{bad} Score calls answered UNKNOWN/INTERNAL: {details.most_common(3)}")
    others = Counter(o.detail[:80] for o in scorer.outcomes if o.code != "OK")
    if others:
        report.counts["Score failure details"] = others.most_common(4)
    back = [t for t, label in report.timeline if label.startswith("back")]
    if back:
        t_back = back[-1]
        failures_after = [o.t for o in scorer.outcomes if o.code != "OK" and o.t >= t_back]
        recovered = (max(failures_after) - t_back) if failures_after else 0.0
        report.counts["Score OK again after the fault ended (s)"] = round(recovered, 1)
        report.check(
            recovered <= recover_s, f"Score still failing {recovered:.1f}s after the fault ended (limit {recover_s}s)"
        )
    down_window = _window(report)
    if down_window:
        during = [o for o in scorer.outcomes if down_window[0] <= o.t <= down_window[1]]
        ok = sum(1 for o in during if o.code == "OK")
        report.counts["Score OK while down"] = f"{ok} / {len(during)}"
    mismatches: list[str] = []
    for sample in health.of("inference"):
        if sample.ready not in (200, 503):
            continue
        near = [o for o in scorer.outcomes if abs(o.t - sample.t) <= 1.0]
        if not near:
            continue
        ok = sum(1 for o in near if o.code == "OK")
        if sample.ready == 200 and ok == 0:
            mismatches.append(f"ready at {sample.t:.0f}s while Score failed")
        if sample.ready == 503 and ok == len(near):
            mismatches.append(f"not ready at {sample.t:.0f}s while Score succeeded ({sample.ready_body[:80]})")
    report.counts["inference readiness disagreeing with Score (samples)"] = len(mismatches)
    report.check(len(mismatches) <= READINESS_SLACK, f"inference readiness untruthful: {mismatches[:4]}")


def _window(report: Report) -> tuple[float, float] | None:
    down = [t for t, label in report.timeline if label.startswith("down")]
    back = [t for t, label in report.timeline if label.startswith("back")]
    return (down[0], back[-1]) if down and back else None


def check_health(report: Report, health: HealthProbe, down: str | None) -> None:
    live_503 = Counter(s.service for s in health.samples if s.live == 503)
    not_ready = Counter(s.service for s in health.samples if s.ready == 503)
    silent = Counter(s.service for s in health.samples if s.live is None)
    report.counts["health samples (1/s/service)"] = len(health.samples)
    report.counts["liveness 503 / readiness 503 / no answer, by service"] = {
        name: (live_503.get(name, 0), not_ready.get(name, 0), silent.get(name, 0))
        for name in sorted({s.service for s in health.samples})
    }
    if live_503:
        bodies = {name: [s for s in health.samples if s.service == name and s.live == 503] for name in live_503}
        report.counts["liveness 503 (first, last) per service"] = {
            name: [(round(s.t), s.live_body) for s in (found[0], found[-1])] for name, found in bodies.items()
        }
    report.check(not live_503, f"liveness answered 503 (a restart would have been triggered): {dict(live_503)}")
    unexpected_silence = {k: v for k, v in silent.items() if k != down and v > 2}
    report.check(not unexpected_silence, f"services that stopped answering /healthz: {unexpected_silence}")


def check_topics(report: Report, records: list[KafkaRecord], upstream: Upstream, scorer: Scorer, prefix: str) -> None:
    canonical: Counter[str] = Counter()
    predictions: Counter[str] = Counter()
    for r in records:
        if r.topic == RECORDS_TOPIC:
            with contextlib.suppress(Exception):
                record = ingest_events.CanonicalRecord.FromString(r.value)
                if record.event_id.startswith(prefix):
                    canonical[record.event_id] += 1
        elif r.topic == PREDICTIONS_TOPIC:
            event_id = r.header("ce_id") or ""
            predictions[event_id] += 1
    expected = set(upstream.acked)
    ok_ids = {o.event_id for o in scorer.outcomes if o.code == "OK" and o.event_id}
    lost = expected - set(canonical)
    dups = sum(n - 1 for n in canonical.values() if n > 1)
    report.counts["canonical topic: present / lost / duplicated"] = (
        f"{len(expected & set(canonical))} / {len(lost)} / {dups}"
    )
    in_kafka = ok_ids & set(predictions)
    report.counts["predictions topic: OK Score predictions present / missing / re-sent"] = (
        f"{len(in_kafka)} / {len(ok_ids - in_kafka)} / {sum(predictions[i] - 1 for i in in_kafka)}"
    )
    report.check(not lost, f"{len(lost)} acknowledged events not on the canonical topic")
    report.check(dups == 0, f"{dups} duplicated canonical records")
