"""``python -m bench.recommend``: inference's Recommend against a direct Triton call of the same model.

See bench/README.md.

One run: export a ``sequence_next_item`` module into the stack's Triton repository under a name of this
run; write the entities' histories for the feature stub and start it; publish the model's registry
events to a topic of this run and start the real inference service on it (free ports, its own predictions
topic, the stack's auth); check Recommend's answers against the direct call's for a sample of entities;
then time every cell (Triton direct, Recommend, the stub's lookup alone; concurrency 1 and 16), one
contender at a time, interleaved by concurrency. Prints the tables and overwrites bench/recommend/results.md.
Exits 1 with the cause when a step fails (logs kept in the temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pstats
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import grpc
import psutil
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.bus import EventProducer
from aimesh.core.channels import TOKEN_FILE_ENV, open_caller_channel
from aimesh.core.signature import InputEncoder
from aimesh.devstack import credentials
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths, repo_root
from aimesh.devstack.process import port_is_open, read_pid, spawn, stop
from aimesh.devstack.services import Service
from aimesh.devstack.triton import model_repository
from bench.feature.data import create_topic
from bench.feature.load import Cell, LoadError, batches, run_cell
from bench.ingest.code import working_tree
from bench.ingest.contenders import free_port
from bench.ingest.machine import describe
from bench.ingest.sampling import OtherProcess, SystemWatch
from bench.ingest.topics import delete_topics
from bench.recommend import data, model
from bench.recommend.clients import LookupClient, RecommendClient, TritonClient
from bench.recommend.report import Busy, RecommendReport, results_markdown, tables
from bench.runner import run_benchmark

HERE = Path(__file__).resolve().parent
CONCURRENCIES = (1, 16)
VERIFY_SAMPLE = 50
PACKAGES = ("aimesh-inference", "aimesh-core", "grpcio", "protobuf", "tritonclient", "torch", "numpy")


class BenchError(RuntimeError):
    """A part did not start, or Recommend and the direct call disagree; the message says which and why."""


FAILURES = (BenchError, LoadError, DevstackError, InferenceServerException, grpc.aio.AioRpcError)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.recommend", description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=2_000, help="entities with a history (default 2,000)")
    parser.add_argument("--vocabulary", type=int, default=5_000, help="items the model ranks (default 5,000)")
    parser.add_argument("--length", type=int, default=20, help="sequence columns (default 20, the trainer's)")
    parser.add_argument("--max-k", type=int, default=100, help="top-k inside the model (default 100, export_k)")
    parser.add_argument("--k", type=int, default=10, help="k each Recommend asks (default 10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s cells, 1 s warm-up")
    parser.add_argument("--seed", type=int, default=42, help="histories seed (default 42)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap (default 127.0.0.1:9092)")
    parser.add_argument("--triton", default="127.0.0.1:8001", help="Triton gRPC (default 127.0.0.1:8001)")
    parser.add_argument("--results", type=Path, default=HERE / "results-serving.md", help="where to write the results")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the temporary directory")
    parser.add_argument(
        "--profile", action="store_true", help="also run Recommend under cProfile -> bench/recommend/profile.txt"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0
    return args


class InferenceProcess(Service):
    """The real ``python -m aimesh.inference`` of this run: the run's registry and predictions topics, the
    shared Triton, the feature stub; log shipping off, everything else at its defaults."""

    def __init__(
        self,
        workdir: Path,
        args: argparse.Namespace,
        *,
        registry: str,
        predictions: str,
        features: str,
        profile_to: Path | None = None,
    ) -> None:
        super().__init__(
            Paths(home=workdir, repo=repo_root()),
            "inference",
            grpc_port=free_port(),
            admin_port=free_port(),
            kafka_bootstrap=args.bootstrap,
            extra_env={
                "INFERENCE_TOPICS": f'["{registry}"]',
                "INFERENCE_PREDICTIONS_TOPIC": predictions,
                "INFERENCE_CONSUMER_GROUP": f"bench-recommend-{registry}",
                "INFERENCE_TRITON_URL": args.triton,
                "INFERENCE_FEATURE_ADDRESS": features,
                "INFERENCE_SHIP_LOGS": "false",
                **({"BENCH_PROFILE_OUT": str(profile_to)} if profile_to is not None else {}),
            },
        )
        self.profile_to = profile_to

    def command(self) -> list[str]:
        if self.profile_to is None:
            return super().command()
        return [*super().command()[:1], "-m", "bench.profiled", "aimesh.inference"]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


async def bench(args: argparse.Namespace, workdir: Path, command: str) -> RecommendReport:
    started = datetime.now(UTC)
    run_id = uuid.uuid4().hex[:8]
    shape = model.ModelShape(args.vocabulary, args.length, args.max_k)
    if not 1 <= args.k <= shape.max_k:
        raise BenchError(f"--k {args.k} is outside [1, --max-k {shape.max_k}]")
    triton_name = f"bench_next_item_{run_id}"
    registry, predictions = f"bench.recommend.{run_id}.registry", f"bench.recommend.{run_id}.predictions"
    await create_topic(args.bootstrap, registry, partitions=1)
    await create_topic(args.bootstrap, predictions, partitions=3)
    exported = model.export(model_repository(Paths.default()), triton_name, shape)
    print(f"exported {triton_name} into {exported.parent}", flush=True)
    histories = data.histories(args.entities, shape.vocabulary, shape.length, args.seed)
    signature = model.signature(shape, data.popular(shape.vocabulary))
    encoder = InputEncoder(signature.inputs)
    rows = {entity: encoder.row([tuple(items)]) for entity, items in histories.items()}
    try:
        async with AsyncExitStack() as stack:
            stub, stub_pidfile = _start_stub(stack, workdir, histories)
            inference = InferenceProcess(
                workdir / "inference", args, registry=registry, predictions=predictions, features=stub
            )
            async with EventProducer(args.bootstrap, source="bench.recommend") as producer:
                for event in model.registry_events(triton_name, triton_name, signature):
                    await producer.publish(registry, event, key=triton_name)
            inference.start()
            stack.callback(inference.stop)
            await asyncio.to_thread(inference.wait_ready, 180)
            if credentials.auth_enabled():
                os.environ[TOKEN_FILE_ENV] = str(credentials.auth_directory(inference.paths) / "demo.token")
            entities = sorted(histories)
            await _await_route(inference.target, _request(triton_name, entities[0], args.k))
            verified = await _verify(inference.target, args, triton_name, rows, signature.inputs[0].vocabulary)
            print(f"Recommend equals the direct call for {verified} entities", flush=True)
            serving = {
                "inference": _process(read_pid(inference.pidfile), "inference"),
                "feature stub": _process(read_pid(stub_pidfile), "feature stub"),
                "Triton": _triton_process(args.triton),
            }
            cells, others = await _measure(args, inference.target, stub, triton_name, rows, entities, serving)
            if args.profile:
                await asyncio.to_thread(inference.stop)
                await _profile(args, inference.paths.home, registry, predictions, stub, triton_name, entities)
            triton_version = await _triton_version(args.triton)
    finally:
        await _unload(args.triton, triton_name)
        model.remove(exported)
        if not args.keep:
            await delete_topics(args.bootstrap, [registry, predictions])
    return RecommendReport(
        started=started,
        command=command,
        shape=shape,
        entities=args.entities,
        k=args.k,
        verified=verified,
        seconds_per_cell=args.seconds,
        warmup_s=args.warmup,
        cells=cells,
        environment=describe(),
        versions={**{name: _version(name) for name in PACKAGES}, "Triton server": triton_version},
        code=working_tree().description.replace("services/ingest", "services/inference"),
        others=others,
    )


def _start_stub(stack: AsyncExitStack, workdir: Path, histories: Mapping[str, list[str]]) -> tuple[str, Path]:
    """Start the feature stub (stopped with ``stack``); returns its address and pidfile. ``BenchError`` when
    it does not listen within 30 s."""
    source = workdir / "histories.json"
    data.write(source, model.SEQUENCE_INPUT, dict(histories))
    port = free_port()
    pidfile, logfile = workdir / "stub.pid", workdir / "stub.log"
    spawn(
        [sys.executable, "-m", "bench.recommend.feature_stub", str(port), str(source)],
        pidfile=pidfile,
        logfile=logfile,
        cwd=repo_root(),
    )
    stack.callback(stop, pidfile, grace=5.0)
    deadline = time.monotonic() + 30
    while not port_is_open(port):
        if time.monotonic() > deadline or read_pid(pidfile) is None:
            raise BenchError(f"the feature stub does not listen on {port}; see {logfile}")
        time.sleep(0.2)
    return f"127.0.0.1:{port}", pidfile


def _request(model_name: str, entity: str, k: int) -> inference_pb2.RecommendRequest:
    return inference_pb2.RecommendRequest(model=model_name, entity_ids={model.ENTITY: entity}, k=k)


async def _await_route(target: str, request: inference_pb2.RecommendRequest, within_s: float = 60.0) -> None:
    """Return when ``request`` is answered (inference has replayed the registry and Triton serves the model);
    raises the last error after ``within_s`` or at once for a status other than UNAVAILABLE."""
    deadline = time.monotonic() + within_s
    async with open_caller_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        while True:
            try:
                await stub.Recommend(request, timeout=10)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


async def _verify(
    target: str, args: argparse.Namespace, triton_name: str, rows: Mapping[str, Sequence[float]], vocab: Sequence[str]
) -> int:
    """Recommend's items for the first ``VERIFY_SAMPLE`` entities equal the direct call's top-k mapped through
    the vocabulary. Raises ``BenchError`` on a difference."""
    entities = sorted(rows)[:VERIFY_SAMPLE]
    direct = TritonClient(args.triton, triton_name, rows, args.max_k)
    async with open_caller_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for entity in entities:
            answer = await stub.Recommend(_request(triton_name, entity, args.k), timeout=10)
            indexes, _ = await direct.outputs(direct.prepare([entity]))
            expected = [vocab[int(i) - 1] for i in indexes.reshape(-1)[: args.k]]
            got = [item.item_id for item in answer.items]
            if got != expected:
                raise BenchError(f"entity {entity}: Recommend answered {got}, the direct call ranks {expected}")
    await direct.close()
    return len(entities)


async def _measure(
    args: argparse.Namespace,
    inference: str,
    stub: str,
    triton_name: str,
    rows: Mapping[str, Sequence[float]],
    entities: Sequence[str],
    serving: Mapping[str, psutil.Process],
) -> tuple[list[tuple[Cell, Busy]], list[OtherProcess]]:
    """Every cell, one contender at a time, interleaved by concurrency; the machine's and each serving
    process's CPU around each cell."""
    ours = {os.getpid(), serving["inference"].pid, serving["feature stub"].pid}
    clients: list[TritonClient | RecommendClient | LookupClient] = [
        TritonClient(args.triton, triton_name, rows, args.max_k),
        RecommendClient(inference, triton_name, args.k),
        LookupClient(stub),
    ]
    picks = batches(entities, 1, 1000, seed=args.seed)
    overall = SystemWatch(exclude=set(ours))
    overall.start()
    cells: list[tuple[Cell, Busy]] = []
    for concurrency in CONCURRENCIES:
        for client in clients:
            watch = SystemWatch(exclude=set(ours))
            calls, before = client.calls, {name: _tree_cpu_s(p) for name, p in serving.items()}
            watch.start()
            cell = await run_cell(client, picks, concurrency=concurrency, seconds=args.seconds, warmup_s=args.warmup)
            watch.stop()
            sent = max(client.calls - calls, 1)
            per_request = {name: (_tree_cpu_s(p) - before[name]) * 1000 / sent for name, p in serving.items()}
            cell = Cell(
                client.name, 1, cell.concurrency, cell.requests, cell.seconds, cell.p50_ms, cell.p99_ms, cell.mean_ms
            )
            cells.append((cell, Busy(watch.busy_cpu_s, watch.wall_s, watch.load_avg, per_request)))
            print(
                f"{client.name:20} c={concurrency:<2}: p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                f"{cell.throughput:8,.0f} req/s  (machine busy {watch.busy_cpu_s / watch.wall_s:.2f} cores)",
                flush=True,
            )
    overall.stop()
    for client in clients:
        await client.close()  # type: ignore[attr-defined]
    return cells, list(overall.others())


async def _profile(
    args: argparse.Namespace,
    home: Path,
    registry: str,
    predictions: str,
    stub: str,
    triton_name: str,
    entities: Sequence[str],
) -> None:
    """The inference process again (``home`` the timed one's, stopped: same credentials) under cProfile,
    Recommend at concurrency 16 for ``--seconds`` (untimed for the tables); its main thread's hot spots go to
    bench/recommend/profile.txt."""
    stats = home / "inference.prof"
    profiled = InferenceProcess(
        home,
        args,
        registry=registry,
        predictions=predictions,
        features=stub,
        profile_to=stats,
    )
    profiled.start()
    try:
        await asyncio.to_thread(profiled.wait_ready, 180)
        await _await_route(profiled.target, _request(triton_name, entities[0], args.k))
        client = RecommendClient(profiled.target, triton_name, args.k)
        picks = batches(entities, 1, 1000, seed=args.seed)
        cell = await run_cell(client, picks, concurrency=16, seconds=args.seconds, warmup_s=0)
        await client.close()
    finally:
        await asyncio.to_thread(profiled.stop)
    text = io.StringIO()
    text.write(
        f"cProfile of the inference service's main thread, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: Recommend at "
        f"concurrency 16 for {args.seconds:.0f} s under the profiler: {cell.requests:,} requests, p50 "
        f"{cell.p50_ms:.2f} ms\n"
    )
    for order in ("tottime", "cumulative"):
        text.write(f"\n=== top 40 by {order} ===\n")
        pstats.Stats(str(stats), stream=text).strip_dirs().sort_stats(order).print_stats(40)
    (HERE / "profile.txt").write_text(text.getvalue())
    print(f"profile written to {HERE / 'profile.txt'}", flush=True)


def _process(process: psutil.Process | None, what: str) -> psutil.Process:
    if process is None:
        raise BenchError(f"the {what} process is not running")
    return process


def _triton_process(url: str) -> psutil.Process:
    """The ``tritonserver`` listening on ``url``'s port (its python-backend stubs are its children)."""
    port = url.rpartition(":")[2]
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "tritonserver" and f"--grpc-port={port}" in (process.info["cmdline"] or []):
            return process
    raise BenchError(f"no tritonserver process with --grpc-port={port} on this machine")


def _tree_cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its live descendants."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def _triton_version(url: str) -> str:
    async with InferenceServerClient(url=url) as client:
        metadata = await client.get_server_metadata()
    return str(metadata.version)


async def _unload(url: str, name: str) -> None:
    try:
        async with InferenceServerClient(url=url) as client:
            await client.unload_model(name, client_timeout=60)
    except InferenceServerException as exc:
        print(f"could not unload {name} from Triton: {exc}", file=sys.stderr)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_benchmark("recommend", argv, parse_args(argv), bench, tables, results_markdown, FAILURES)


if __name__ == "__main__":
    sys.exit(main())
