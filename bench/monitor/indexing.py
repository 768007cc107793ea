"""``python -m bench.monitor.indexing``: monitor's ``bulk_index`` against ``helpers.async_bulk``; see bench/README.md.

The same seeded prediction documents (``bench.monitor.indexing_data``) are indexed into the same
Elasticsearch through one client by (a) the anchor, ``elasticsearch.helpers.async_bulk`` with the
client's default (stdlib) serializer, and (b) ``ElasticStore.bulk_index`` (orjson NDJSON), in batches of
``--batch`` documents with ``--concurrency`` batches in flight, in ``--rounds`` interleaved rounds (the
order alternates). Each run writes a fresh index under this run's templates (monitor's own, from
``ensure_templates``); after it the index must hold every document, and in the first round a sample of
sources must be equal in both indices. Indices and templates are deleted at the end (``--keep`` keeps
them). Prints the table and overwrites bench/monitor/indexing_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from aimesh.devstack.paths import Paths
from aimesh.devstack.process import read_pid
from aimesh.monitor.bulk import IndexRequest
from aimesh.monitor.documents import Document
from aimesh.monitor.elastic import BULK_CHUNK, ElasticStore
from bench.ingest.machine import describe
from bench.ingest.sampling import SystemWatch
from bench.monitor.indexing_data import documents
from bench.monitor.indexing_report import CONTENDERS, IndexingReport, RunResult, results_markdown, table
from bench.runner import run_benchmark

HERE = Path(__file__).resolve().parent
Batch = Sequence[tuple[str, Document]]
Sender = Callable[[str, Batch], Awaitable[None]]


class BenchError(RuntimeError):
    """A run indexed the wrong count or the two contenders stored different sources."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor.indexing", description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=50_000, help="documents per run (default 50,000)")
    parser.add_argument("--batch", type=int, default=BULK_CHUNK, help=f"documents per bulk call (default {BULK_CHUNK})")
    parser.add_argument("--concurrency", type=int, default=2, help="bulk calls in flight (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 documents, 2 rounds")
    parser.add_argument("--url", default="http://127.0.0.1:9200", help="Elasticsearch (default http://127.0.0.1:9200)")
    parser.add_argument("--results", type=Path, default=HERE / "indexing_results.md", help="where to write results")
    parser.add_argument("--keep", action="store_true", help="keep the indices and templates")
    args = parser.parse_args(argv)
    if args.quick:
        args.documents, args.rounds = 5_000, 2
    return args


def anchor_sender(es: AsyncElasticsearch) -> Sender:
    async def send(index: str, batch: Batch) -> None:
        actions = [{"_op_type": "index", "_index": index, "_id": i, "_source": d} for i, d in batch]
        _, errors = await async_bulk(es, actions, chunk_size=len(batch), raise_on_error=False, max_retries=2)
        if errors:
            raise BenchError(f"async_bulk refused documents: {errors!r:.500}")

    return send


def ours_sender(store: ElasticStore) -> Sender:
    async def send(index: str, batch: Batch) -> None:
        rejected = await store.bulk_index([IndexRequest(index, i, d) for i, d in batch])
        if rejected:
            raise BenchError(f"bulk_index refused documents: {rejected[:3]!r:.500}")

    return send


async def timed_run(
    name: str, send: Sender, index: str, docs: Batch, batch: int, concurrency: int, es_proc: psutil.Process | None
) -> RunResult:
    """Index ``docs`` into ``index`` with ``concurrency`` workers taking ``batch``-sized slices in order."""
    slices = [docs[i : i + batch] for i in range(0, len(docs), batch)]
    queue = iter(slices)

    async def worker() -> None:
        for part in queue:
            await send(index, part)

    es_cpu = _cpu(es_proc)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return RunResult(name, len(docs), wall_s, cpu_s, _cpu(es_proc) - es_cpu if es_proc else None)


async def verify(es: AsyncElasticsearch, index: str, expected: int) -> None:
    await es.indices.refresh(index=index)
    count = (await es.count(index=index))["count"]
    if count != expected:
        raise BenchError(f"{index} holds {count} documents, expected {expected}")


async def same_sources(es: AsyncElasticsearch, indices: Sequence[str], ids: Sequence[str]) -> None:
    answers = [await es.mget(index=index, ids=list(ids)) for index in indices]
    sources = [[d["_source"] for d in answer["docs"]] for answer in answers]
    if any(s != sources[0] for s in sources[1:]):
        raise BenchError(f"the contenders stored different sources in {', '.join(indices)}")


async def bench(args: argparse.Namespace, workdir: Path, command: str) -> IndexingReport:
    started = datetime.now(UTC)
    docs = documents(args.documents, args.seed)
    store = ElasticStore(args.url, f"bench-indexing-{uuid.uuid4().hex[:8]}", request_timeout=120)
    es = store.client
    senders = {"async_bulk": anchor_sender(es), "bulk_index": ours_sender(store)}
    es_proc = read_pid(Paths.default().pidfile("elasticsearch"))
    runs: list[RunResult] = []
    created: list[str] = []
    try:
        info = await es.nodes.info(node_id="_local", filter_path="nodes.*.version")
        es_version = str(next(iter(info["nodes"].values()))["version"])
        await store.ensure_templates()
        base = store.indices["predictions"]
        for name, send in senders.items():  # warm-up: connections, mapping creation, JIT
            created.append(f"{base}-warmup-{name.replace('_', '')}")
            await send(created[-1], docs[: args.batch])
        ours = [psutil.Process(), *([es_proc, *es_proc.children(recursive=True)] if es_proc else [])]
        system = SystemWatch(exclude={p.pid for p in ours})
        system.start()
        load_before = psutil.getloadavg()
        for round_ in range(args.rounds):
            order = list(CONTENDERS) if round_ % 2 == 0 else list(reversed(CONTENDERS))
            indices = []
            for name in order:
                index = f"{base}-{name.replace('_', '')}-{round_}"
                created.append(index)
                result = await timed_run(name, senders[name], index, docs, args.batch, args.concurrency, es_proc)
                await verify(es, index, len(docs))
                runs.append(result)
                indices.append(index)
                print(f"round {round_ + 1} {name}: {result.docs_per_s:,.0f} docs/s, {result.cpu_s:.2f} CPU s")
            if round_ == 0:
                await same_sources(es, indices, [i for i, _ in docs[:: max(1, len(docs) // 200)]])
            if not args.keep:
                await es.indices.delete(index=indices)
                created = [i for i in created if i not in indices]
        system.stop()
    finally:
        if not args.keep:
            if created:
                await es.indices.delete(index=created, ignore_unavailable=True)
            for template in store.indices.values():
                await es.options(ignore_status=404).indices.delete_index_template(name=template)
        await store.close()
    return IndexingReport(
        started=started,
        command=command,
        documents=len(docs),
        batch=args.batch,
        concurrency=args.concurrency,
        seed=args.seed,
        runs=runs,
        es_version=es_version,
        environment=describe(),
        load_before=load_before,
        system=system,
    )


def _cpu(proc: psutil.Process | None) -> float:
    """User + system CPU seconds of ``proc`` and its children (the pid file names the JVM's launcher)."""
    if proc is None:
        return 0.0
    total = 0.0
    for member in [proc, *proc.children(recursive=True)]:
        times: Any = member.cpu_times()
        total += times.user + times.system
    return total


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_benchmark("monitor.indexing", argv, parse_args(argv), bench, table, results_markdown, (BenchError,))


if __name__ == "__main__":
    sys.exit(main())
