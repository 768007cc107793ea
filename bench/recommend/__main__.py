"""``python -m bench.recommend``: inference's Recommend against a direct Triton call of the same model.

See bench/README.md.

One run: export a ``sequence_next_item`` module into the stack's Triton repository under a name of this
run; write the entities' histories for the feature stub and start it; publish the model's registry
events to a topic of this run and start the real inference service on it (free ports, its own predictions
topic, the stack's auth); check Recommend's answers against the direct call's for a sample of entities;
then time every cell (Triton direct, Recommend, the stub's lookup alone; concurrency 1 and 16), one
contender at a time, interleaved by concurrency. Prints the tables and overwrites
bench/recommend/results-serving.md.
Exits 1 with the cause when a step fails (logs kept in the temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.bus import EventProducer
from aimesh.core.channels import open_caller_channel
from aimesh.core.signature import InputEncoder
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import read_pid
from aimesh.devstack.triton import model_repository
from bench.feature.data import create_topic
from bench.feature.load import batches
from bench.ingest.machine import describe
from bench.ingest.topics import delete_topics
from bench.recommend import data, model
from bench.recommend.clients import RecommendClient
from bench.recommend.report import RecommendReport, results_markdown, tables
from bench.runner import run_benchmark
from bench.serving.clients import LookupClient, TritonClient
from bench.serving.feature_stub import ANY_SERVICE, StubService
from bench.serving.measure import Contender, measure
from bench.serving.profile import profile_inference
from bench.serving.stack import (
    FAILURES,
    BenchError,
    InferenceProcess,
    await_answer,
    code_description,
    serving_process,
    start_stub,
    triton_process,
    triton_version,
    unload,
    use_stack_token,
    versions,
)

HERE = Path(__file__).resolve().parent
CONCURRENCIES = (1, 16)
VERIFY_SAMPLE = 50
PACKAGES = ("aimesh-inference", "aimesh-core", "grpcio", "protobuf", "tritonclient", "torch", "numpy")


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
            known = StubService([model.SEQUENCE_INPUT], {entity: [items] for entity, items in histories.items()})
            stub, stub_pidfile = start_stub(stack, workdir, {ANY_SERVICE: known})
            inference = _inference(workdir / "inference", args, registry, predictions, stub)
            async with EventProducer(args.bootstrap, source="bench.recommend") as producer:
                for event in model.registry_events(triton_name, triton_name, signature):
                    await producer.publish(registry, event, key=triton_name)
            inference.start()
            stack.callback(inference.stop)
            await asyncio.to_thread(inference.wait_ready, 180)
            use_stack_token(inference)
            entities = sorted(histories)
            await _await_route(inference.target, _request(triton_name, entities[0], args.k))
            verified = await _verify(inference.target, args, triton_name, rows, signature.inputs[0].vocabulary)
            print(f"Recommend equals the direct call for {verified} entities", flush=True)
            serving = {
                "inference": serving_process(read_pid(inference.pidfile), "inference"),
                "feature stub": serving_process(read_pid(stub_pidfile), "feature stub"),
                "Triton": triton_process(args.triton),
            }
            picks = batches(entities, 1, 1000, seed=args.seed)
            contenders: list[Contender] = [
                TritonClient(args.triton, triton_name, rows, _outputs(args.max_k)),
                RecommendClient(inference.target, triton_name, args.k),
                LookupClient(stub, model.FEATURE_SERVICE, model.ENTITY),
            ]
            cells, others = await measure(
                [(client, picks) for client in contenders],
                serving,
                concurrencies=CONCURRENCIES,
                seconds=args.seconds,
                warmup_s=args.warmup,
            )
            if args.profile:
                await asyncio.to_thread(inference.stop)
                await _profile(args, inference.paths.home, registry, predictions, stub, triton_name, entities)
            triton_server = await triton_version(args.triton)
    finally:
        await unload(args.triton, triton_name)
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
        versions={**versions(PACKAGES), "Triton server": triton_server},
        code=code_description(),
        others=others,
    )


def _inference(
    home: Path, args: argparse.Namespace, registry: str, predictions: str, stub: str, profile_to: Path | None = None
) -> InferenceProcess:
    return InferenceProcess(
        home,
        bootstrap=args.bootstrap,
        triton=args.triton,
        registry=registry,
        predictions=predictions,
        features=stub,
        group="bench-recommend",
        profile_to=profile_to,
    )


def _outputs(max_k: int) -> dict[str, int]:
    """The exported model's outputs: item indexes and their scores, ``max_k`` each."""
    return {"OUTPUT__0": max_k, "OUTPUT__1": max_k}


def _request(model_name: str, entity: str, k: int) -> inference_pb2.RecommendRequest:
    return inference_pb2.RecommendRequest(model=model_name, entity_ids={model.ENTITY: entity}, k=k)


async def _await_route(target: str, request: inference_pb2.RecommendRequest) -> None:
    """Return when ``request`` is answered (see ``bench.serving.stack.await_answer``)."""
    async with open_caller_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        await await_answer(lambda: stub.Recommend(request, timeout=10))


async def _verify(
    target: str, args: argparse.Namespace, triton_name: str, rows: Mapping[str, Sequence[float]], vocab: Sequence[str]
) -> int:
    """Recommend's items for the first ``VERIFY_SAMPLE`` entities equal the direct call's top-k mapped through
    the vocabulary. Raises ``BenchError`` on a difference."""
    entities = sorted(rows)[:VERIFY_SAMPLE]
    direct = TritonClient(args.triton, triton_name, rows, _outputs(args.max_k))
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
    text = await profile_inference(
        _inference(home, args, registry, predictions, stub, profile_to=home / "inference.prof"),
        lambda target: _await_route(target, _request(triton_name, entities[0], args.k)),
        lambda target: RecommendClient(target, triton_name, args.k),
        batches(entities, 1, 1000, seed=args.seed),
        concurrency=16,
        seconds=args.seconds,
    )
    (HERE / "profile.txt").write_text(text)
    print(f"profile written to {HERE / 'profile.txt'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_benchmark("recommend", argv, parse_args(argv), bench, tables, results_markdown, FAILURES)


if __name__ == "__main__":
    sys.exit(main())
