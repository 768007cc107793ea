"""``python -m bench.feature``: aimesh's GetOnlineFeatures against Feast's Python feature server; see bench/README.md.

One run: ensure the Feast virtualenv; publish the generated card transactions as canonical records to
a topic of this run; start the feature service on it (SQLite online store) and measure its streaming
update rate; read aimesh's 50 values of every card at one as-of time; when ``redis-server`` is
installed, do the same with a second feature service on a Redis online store and check it serves the
same values; give Feast exactly those values (SQLite online store, and Redis), check a sample
matches; then time every cell (1 and 100 entities x 50 features, concurrency 1 and 16) server by
server; then the backfill memory (when the feature service has a backfill). Prints the tables and overwrites
bench/feature/results.md. Exits 1 with the cause when a step fails (logs kept in the temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import pstats
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx

from bench.feature import backfill as backfill_bench
from bench.feature.aimesh_side import (
    DEFINITIONS,
    AimeshError,
    FeatureProcess,
    ServedValues,
    StreamRate,
    aimesh_redis,
    values_at,
)
from bench.feature.data import canonical_transactions, create_topic, publish
from bench.feature.feast_env import FEAST_VERSION, FeastEnvError, feast_python
from bench.feature.feast_side import (
    Column,
    FeastError,
    FeastServer,
    RedisServer,
    apply_and_materialize,
    views_by_feature,
    write_repo,
)
from bench.feature.load import AimeshClient, Cell, Client, FeastClient, LoadError, batches, run_cell
from bench.feature.report import FeatureReport, results_markdown, tables
from bench.feature.verify import MismatchError, compare, feast_values
from bench.ingest.code import working_tree
from bench.ingest.machine import describe
from bench.ingest.topics import delete_topics
from bench.runner import run_benchmark

HERE = Path(__file__).resolve().parent
SHAPES = (1, 100)
CONCURRENCIES = (1, 16)
VERIFY_SAMPLE = 100
PACKAGES = (
    "aimesh-feature",
    "aimesh-core",
    "grpcio",
    "protobuf",
    "aiohttp",
    "pyarrow",
    "SQLAlchemy",
    "aiosqlite",
    "redis",
    "hiredis",
)
AIMESH_SQLITE, AIMESH_REDIS = "aimesh (SQLite)", "aimesh (Redis)"
FAILURES = (AimeshError, FeastEnvError, FeastError, LoadError, MismatchError, backfill_bench.BackfillError)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.feature", description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=50_000, help="generated transactions (default 50,000)")
    parser.add_argument("--cards", type=int, default=2_000, help="about this many cards (default 2,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 transactions, 3 s cells, 100k lake rows")
    parser.add_argument("--lake-rows", type=int, default=10_000_000, help="lake rows for the backfill (default 10M)")
    parser.add_argument(
        "--no-redis", action="store_true", help="skip aimesh and Feast on Redis even if redis-server exists"
    )
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap (default 127.0.0.1:9092)")
    parser.add_argument("--timeout", type=float, default=900.0, help="limit for the streaming phase, seconds")
    parser.add_argument("--results", type=Path, default=HERE / "results.md", help="where to write results.md")
    parser.add_argument("--keep", action="store_true", help="keep the topic and the temporary directory")
    parser.add_argument(
        "--profile", action="store_true", help="also run aimesh's cells under cProfile -> bench/feature/profile.txt"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.transactions, args.seconds, args.warmup, args.lake_rows = 5_000, 3.0, 1.0, 100_000
    return args


async def bench(args: argparse.Namespace, workdir: Path, command: str) -> FeatureReport:
    started = datetime.now(UTC)
    print("Feast virtualenv ...", flush=True)
    await asyncio.to_thread(feast_python)
    run_id = uuid.uuid4().hex[:8]
    topic = f"bench.feature.{run_id}.records"
    await create_topic(args.bootstrap, topic, partitions=6)
    try:
        end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
        records = canonical_transactions(transactions=args.transactions, cards=args.cards, seed=args.seed, end=end)
        published = await publish(args.bootstrap, topic, records)
        print(f"published {published.records:,} records of {len(published.cards):,} cards", flush=True)
        versions: dict[str, str] = {}
        async with AsyncExitStack() as stack:
            service = await _started(stack, workdir / "aimesh", args, topic, run_id)
            streams = {AIMESH_SQLITE: await _stream(service, AIMESH_SQLITE, published.records, args.timeout)}
            as_of = datetime.now(UTC).replace(microsecond=0)
            served = await values_at(service.target, published.cards, as_of)
            print(f"aimesh serves {len(served.features)} features for {len(served.values):,} cards", flush=True)
            services = [(AIMESH_SQLITE, service)]
            verified: dict[str, int] = {}
            if not args.no_redis and RedisServer.available():
                redis = aimesh_redis(workdir / "aimesh-redis")
                stack.callback(redis.stop)
                versions["redis-server"] = redis.health().version or "unknown"
                on_redis = await _started(
                    stack,
                    workdir / "aimesh-on-redis",
                    args,
                    topic,
                    f"{run_id}-redis",
                    {"FEATURE_ONLINE_STORE_URL": redis.url},
                )
                streams[AIMESH_REDIS] = await _stream(on_redis, AIMESH_REDIS, published.records, args.timeout)
                theirs = await values_at(on_redis.target, published.cards, as_of)
                verified[AIMESH_REDIS] = compare(served, theirs.values, other=AIMESH_REDIS)
                services.append((AIMESH_REDIS, on_redis))
            cells, feasts_verified = await serve_and_measure(
                args, workdir, stack, services, served, as_of, published.cards
            )
            verified.update(feasts_verified)
        if args.profile:
            await profile(args, workdir, topic, run_id, published.cards, published.records)
        backfill = await backfill_bench.measure(workdir / "backfill", rows=args.lake_rows, seed=args.seed)
    finally:
        if not args.keep:
            await delete_topics(args.bootstrap, [topic])
    return FeatureReport(
        started=started,
        command=command,
        transactions=published.records,
        cards=len(published.cards),
        features=len(served.features),
        verified=verified,
        seconds_per_cell=args.seconds,
        warmup_s=args.warmup,
        cells=cells,
        streams=streams,
        backfill=backfill,
        environment=describe(),
        versions={**{name: _version(name) for name in PACKAGES}, "feast": FEAST_VERSION, **versions},
        code=working_tree().description.replace("services/ingest", "services/feature"),
        notes=_standing_notes(),
    )


async def _started(
    stack: AsyncExitStack,
    workdir: Path,
    args: argparse.Namespace,
    topic: str,
    run_id: str,
    extra_env: dict[str, str] | None = None,
) -> FeatureProcess:
    """A feature service consuming ``topic`` (stopped with ``stack``), ready; raises ``AimeshError``."""
    service = FeatureProcess(workdir, bootstrap=args.bootstrap, topic=topic, run_id=run_id, extra_env=extra_env)
    service.start()
    stack.callback(service.stop)
    service.pid()
    try:
        await asyncio.to_thread(service.wait_ready, 120)
    except Exception as exc:
        raise AimeshError(f"not ready: {exc}{service.quote_log()}") from exc
    return service


async def _stream(service: FeatureProcess, name: str, records: int, timeout_s: float) -> StreamRate:
    stream = await service.stream_rate(records, timeout_s=timeout_s)
    print(f"{name} streaming: {stream.per_second:,.0f} records/s", flush=True)
    return stream


async def serve_and_measure(
    args: argparse.Namespace,
    workdir: Path,
    stack: AsyncExitStack,
    services: Sequence[tuple[str, FeatureProcess]],
    served: ServedValues,
    as_of: datetime,
    cards: Sequence[str],
) -> tuple[list[Cell], dict[str, int]]:
    """Set up every Feast store with aimesh's values, verify them, then time each aimesh and each Feast in turn."""
    views = views_by_feature(DEFINITIONS)
    columns = [Column.of(ref, kind, views) for ref, kind in zip(served.features, served.kinds, strict=True)]
    feasts: list[tuple[str, FeastServer]] = []
    stores: list[tuple[str, dict[str, str]]] = [
        ("Feast (SQLite)", {"type": "sqlite", "path": str(workdir / "feast-sqlite" / "data" / "online.db")})
    ]
    if not args.no_redis and RedisServer.available():
        redis = RedisServer(workdir / "redis")
        redis.start()
        stack.callback(redis.stop)
        stores.append(("Feast (Redis)", {"type": "redis", "connection_string": f"127.0.0.1:{redis.port}"}))
    verified: dict[str, int] = {}
    for name, online_store in stores:
        repo = workdir / ("feast-" + online_store["type"])
        print(f"{name}: feast apply + materialize ...", flush=True)
        write_repo(repo, columns, served.values, as_of=as_of, online_store=online_store)
        await asyncio.to_thread(apply_and_materialize, repo, as_of=as_of)
        server = FeastServer(repo)
        server.start()
        stack.callback(server.stop)
        await _await_health(server)
        sample = list(cards[:VERIFY_SAMPLE])
        verified[name] = compare(served, await feast_values(server.url, sample, served.features))
        feasts.append((name, server))
    cells: list[Cell] = []
    clients: list[Client] = [AimeshClient(service.target, name) for name, service in services]
    clients += [FeastClient(server.url, name) for name, server in feasts]
    for client in clients:
        async for entities, concurrency, cell in _every_cell(client, cards, args, warmup_s=args.warmup):
            print(
                f"{client.name:15} {entities:>3} entities c={concurrency:<2}: p50 {cell.p50_ms:7.2f} ms  "
                f"p99 {cell.p99_ms:7.2f} ms  {cell.throughput:8,.0f} req/s",
                flush=True,
            )
            cells.append(cell)
        await client.close()  # type: ignore[attr-defined]
    return cells, verified


async def _every_cell(
    client: Client, cards: Sequence[str], args: argparse.Namespace, *, warmup_s: float
) -> AsyncIterator[tuple[int, int, Cell]]:
    """Each (entities, concurrency) cell of SHAPES x CONCURRENCIES run against ``client``, in order."""
    for entities in SHAPES:
        for concurrency in CONCURRENCIES:
            cell = await run_cell(
                client,
                batches(cards, entities, 500, seed=args.seed),
                concurrency=concurrency,
                seconds=args.seconds,
                warmup_s=warmup_s,
            )
            yield entities, concurrency, cell


async def profile(
    args: argparse.Namespace, workdir: Path, topic: str, run_id: str, cards: Sequence[str], records: int
) -> None:
    """Run a fresh feature service under cProfile (same topic, own group and data), drive aimesh's four
    cells once more (untimed for the tables), stop it and write its hot spots to bench/feature/profile.txt."""
    print("running the feature service under cProfile ...", flush=True)
    stats_file = workdir / "feature.prof"
    service = FeatureProcess(
        workdir / "aimesh-profiled",
        bootstrap=args.bootstrap,
        topic=topic,
        run_id=f"{run_id}-profiled",
        profile_to=stats_file,
    )
    service.start()
    try:
        await asyncio.to_thread(service.wait_ready, 120)
        await service.stream_rate(records, timeout_s=args.timeout)
        client = AimeshClient(service.target)
        lines = [
            f"{entities} entities, c={concurrency}: {cell.requests:,} requests, p99 {cell.p99_ms:.2f} ms"
            async for entities, concurrency, cell in _every_cell(client, cards, args, warmup_s=0)
        ]
        await client.close()
    finally:
        await asyncio.to_thread(service.stop)
    text = io.StringIO()
    text.write(
        f"cProfile of the feature service's main thread, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: streaming "
        f"{records:,} records, then aimesh's cells under the profiler:\n" + "\n".join(lines) + "\n"
    )
    for order in ("tottime", "cumulative"):
        text.write(f"\n=== top 40 by {order} ===\n")
        pstats.Stats(str(stats_file), stream=text).strip_dirs().sort_stats(order).print_stats(40)
    (HERE / "profile.txt").write_text(text.getvalue())
    print(f"profile written to {HERE / 'profile.txt'}", flush=True)


async def _await_health(server: FeastServer, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{server.url}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise FeastError(f"feast serve not healthy after {timeout_s:.0f} s; see {server.logfile}")


def _standing_notes() -> list[str]:
    return [
        "Timed aimesh requests name the feature service and the card ids only (as-of = request time), so "
        "aimesh computes the window aggregations at request time; Feast returns the precomputed values it "
        "materialised (it cannot slide windows on read).",
        "Feast runs `feast serve --workers 1 --no-access-log --max-requests 0 --registry_ttl_sec 3600` "
        "(its default recycles the worker every 1,000 requests); aimesh runs as one process with its defaults "
        "(SQLite online store, in-process read cache on), log shipping off. aimesh (Redis) is the same with "
        "FEATURE_ONLINE_STORE_URL at a private redis-server configured as `aimesh up` runs its own (AOF, "
        "appendfsync everysec); Feast's Redis runs without persistence. With the read cache on, both aimesh "
        "stores serve the timed cells mostly from the cache: the store shows in streaming throughput and misses.",
        "Clients: aimesh over one grpc.aio channel, Feast over one aiohttp session (JSON decoded with orjson); "
        "both in the harness process, one server loaded at a time, on the same cores as the servers.",
    ]


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_benchmark("feature", argv, parse_args(argv), bench, tables, results_markdown, FAILURES)


if __name__ == "__main__":
    sys.exit(main())
