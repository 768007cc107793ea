"""``python -m bench.inference``: inference's Score and ScoreBatch against calling the feature service and Triton
yourself.

See bench/README.md.

One run, for the two use cases of ``bench.inference.cases`` (card fraud: ``mlp_classifier`` over 10 stored
aggregates; machine failure: ``logistic_regression`` over 2 stored aggregates and 3 context inputs, one
categorical): train each model on a seeded tabular slice and export it into the stack's Triton repository
under a name of this run; start the feature stub with both feature services; publish both models' registry
events to a topic of this run and start the real inference service on it (free ports, its own predictions
topic, the stack's auth); then per model: check that Triton, Score, the do-it-yourself path and ScoreBatch
give the same scores for a sample of entities; time every cell ((a) Triton direct, (c) GetOnlineFeatures +
Triton, (d) Score, (e) ScoreBatch of ``--batch-rows`` rows; concurrency 1 and 16), one contender at a
time, interleaved by concurrency; then (b) Triton's ``perf_analyzer`` at 1 and 16 when it is installed
(``make bench-tools``; without it the run says so and goes on). Prints the tables and overwrites
bench/inference/results.md. Exits 1 with the cause when a step fails (logs kept in the temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psutil

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.core.bus import EventProducer
from aimesh.core.signature import Scalar
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import read_pid
from aimesh.devstack.triton import model_repository
from bench.feature.data import create_topic
from bench.feature.load import batches
from bench.inference import model, perf_analyzer
from bench.inference.cases import CASES, Case
from bench.inference.clients import ScoreBatchClient, ScoreClient, UserClient
from bench.inference.deliveries import DeliveryWatch, await_drained
from bench.inference.report import (
    BATCH,
    PERF,
    SCORE,
    TRITON,
    USER,
    InferenceReport,
    ModelRun,
    ProfileSummary,
    Verification,
    results_markdown,
    tables,
)
from bench.ingest.machine import describe
from bench.ingest.sampling import OtherProcess
from bench.ingest.topics import delete_topics
from bench.runner import run_benchmark
from bench.serving.clients import TritonClient
from bench.serving.measure import measure
from bench.serving.profile import cumulative_seconds, profile_inference
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
TOLERANCE = 1e-5
LOOP, POLL = ("base_events.py", "_run_once"), ("~", "<method 'poll' of 'select.epoll' objects>")
SCORING, DELIVER = "scoring.py", ("predictions.py", "_deliver")
"""The event loop's iterations and its waits for I/O, the handler in ``aimesh.inference.scoring``, the
Prediction deliveries (cProfile's names)."""
PACKAGES = (
    "aimesh-inference",
    "aimesh-core",
    "aimesh-training",
    "grpcio",
    "protobuf",
    "tritonclient",
    "torch",
    "numpy",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=2_000, help="entities with feature values (default 2,000)")
    parser.add_argument("--batch-rows", type=int, default=100, help="rows per ScoreBatch call (default 100)")
    parser.add_argument("--train-rows", type=int, default=5_000, help="rows the model is trained on (default 5,000)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s cells, 1 s warm-up")
    parser.add_argument("--seed", type=int, default=42, help="data seed (default 42)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap (default 127.0.0.1:9092)")
    parser.add_argument("--triton", default="127.0.0.1:8001", help="Triton gRPC (default 127.0.0.1:8001)")
    parser.add_argument("--results", type=Path, default=HERE / "results.md", help="where to write the results")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the temporary directory")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run Score and ScoreBatch at concurrency 16 under cProfile -> bench/inference/profile.txt",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0
    if not 1 <= args.batch_rows <= min(args.entities, 256):
        parser.error("--batch-rows must be in [1, min(--entities, 256)] (INFERENCE_MAX_BATCH_ROWS defaults to 256)")
    return args


@dataclass(frozen=True)
class Prepared:
    """One use case ready to serve: its model trained and its signature, the run's Triton name, each entity's
    values, encoded row and request context."""

    case: Case
    name: str
    trained: model.Trained
    signature: signature_pb2.ModelSignature
    values: dict[str, list[Scalar]]
    rows: dict[str, list[float]]
    contexts: dict[str, dict[str, common_pb2.Value]]

    @property
    def entities(self) -> list[str]:
        return sorted(self.values)


def prepare(case: Case, args: argparse.Namespace, run_id: str) -> Prepared:
    trained = model.train(case, args.train_rows, args.epochs, args.seed)
    signature = model.signature(trained)
    values = model.values(case, args.entities, args.seed)
    print(
        f"trained {case.trainer.name} for {case.title} on {trained.rows:,} rows ({trained.positives:,} positive)",
        flush=True,
    )
    return Prepared(
        case,
        f"bench_{case.key}_{run_id}",
        trained,
        signature,
        values,
        model.encoded_rows(signature, values),
        model.contexts(case, values),
    )


async def bench(args: argparse.Namespace, workdir: Path, command: str) -> InferenceReport:
    started = datetime.now(UTC)
    run_id = uuid.uuid4().hex[:8]
    registry, predictions = f"bench.inference.{run_id}.registry", f"bench.inference.{run_id}.predictions"
    located = perf_analyzer.locate()
    print(located.note, flush=True)
    prepared = [await asyncio.to_thread(prepare, case, args, run_id) for case in CASES]
    await create_topic(args.bootstrap, registry, partitions=1)
    await create_topic(args.bootstrap, predictions, partitions=3)
    exported = []
    for p in prepared:
        exported.append(model.export(model_repository(Paths.default()), p.name, p.trained, p.signature))
        print(f"exported {p.name} into {exported[-1].parent}", flush=True)
    try:
        async with AsyncExitStack() as stack:
            services = {p.case.feature_service: model.stub_service(p.case, p.values) for p in prepared}
            stub, stub_pidfile = start_stub(stack, workdir, services)
            inference = _inference(workdir / "inference", args, registry, predictions, stub)
            async with EventProducer(args.bootstrap, source="bench.inference") as producer:
                for p in prepared:
                    for event in model.registry_events(p.case, p.name, p.name, p.signature):
                        await producer.publish(registry, event, key=p.name)
            inference.start()
            stack.callback(inference.stop)
            await asyncio.to_thread(inference.wait_ready, 180)
            use_stack_token(inference)
            serving = {
                "inference": serving_process(read_pid(inference.pidfile), "inference"),
                "feature stub": serving_process(read_pid(stub_pidfile), "feature stub"),
                "Triton": triton_process(args.triton),
            }
            runs, others = [], []
            for p in prepared:
                run, seen = await _bench_model(args, workdir, p, inference, stub, serving, located.binary)
                runs.append(run)
                others.extend(seen)
            profiled: list[ProfileSummary] = []
            if args.profile:
                await asyncio.to_thread(inference.stop)
                profiled = await _profile(args, inference.paths.home, registry, predictions, stub, prepared[0])
            triton_server = await triton_version(args.triton)
    finally:
        for p, directory in zip(prepared, exported, strict=False):
            await unload(args.triton, p.name)
            model.remove(directory)
        if not args.keep:
            await delete_topics(args.bootstrap, [registry, predictions])
    return InferenceReport(
        started=started,
        command=command,
        entities=args.entities,
        batch_rows=args.batch_rows,
        seconds_per_cell=args.seconds,
        warmup_s=args.warmup,
        models=runs,
        perf_analyzer=located.note,
        environment=describe(),
        versions={**versions(PACKAGES), "Triton server": triton_server},
        code=code_description(),
        others=_merged(others),
        profiles=profiled,
    )


async def _bench_model(
    args: argparse.Namespace,
    workdir: Path,
    p: Prepared,
    inference: InferenceProcess,
    stub: str,
    serving: Mapping[str, psutil.Process],
    perf_binary: Path | None,
) -> tuple[ModelRun, list[OtherProcess]]:
    """Cross-check one model's contenders, then time (a), (c), (d), (e) interleaved by concurrency, then (b)
    at each concurrency when perf_analyzer is installed."""
    case, name, entities = p.case, p.name, p.entities
    print(f"-- {case.title}: {name}", flush=True)
    triton = TritonClient(args.triton, name, p.rows, {"OUTPUT__0": 1}, name=TRITON)
    user = UserClient(stub, args.triton, name, case.feature_service, case.entity, p.signature.inputs, p.contexts, USER)
    score = ScoreClient(inference.target, name, case.entity, p.contexts, SCORE)
    batch = ScoreBatchClient(inference.target, name, case.entity, p.contexts, BATCH)
    await _first_score(inference.target, p, entities[0])
    verification = await _verify(p, entities[: args.batch_rows], triton, user, score, batch)
    print(
        f"cross-checked {verification.entities} entities: Triton vs eager {verification.eager_vs_triton:.1e}, "
        f"Score vs Triton {verification.score_vs_triton:.1e}, (c) vs Triton {verification.user_vs_triton:.1e}, "
        f"ScoreBatch vs Score {verification.batch_vs_score:.1e}",
        flush=True,
    )
    single = batches(entities, 1, 1000, seed=args.seed)
    many = batches(entities, args.batch_rows, 100, seed=args.seed)
    deliveries = DeliveryWatch(inference.admin_url)
    cells, others = await measure(
        [(triton, single), (user, single), (score, single), (batch, many)],
        serving,
        concurrencies=CONCURRENCIES,
        seconds=args.seconds,
        warmup_s=args.warmup,
        hook=deliveries,
    )
    perf_cpu: dict[int, float] = {}
    if perf_binary is not None:
        data = perf_analyzer.write_input_data(workdir / f"perf-{name}.json", [p.rows[e] for e in entities])
        for concurrency in CONCURRENCIES:
            cell, busy, own_ms = await perf_analyzer.run(
                perf_binary,
                url=args.triton,
                model=name,
                concurrency=concurrency,
                seconds=args.seconds,
                input_data=data,
                workdir=workdir,
                triton=serving["Triton"],
                name=PERF,
            )
            cells.append((cell, busy))
            perf_cpu[concurrency] = own_ms
            print(
                f"{PERF:22} c={concurrency:<2}: p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                f"{cell.throughput:8,.0f} req/s  (machine busy {busy.cores:.2f} cores)",
                flush=True,
            )
    run = ModelRun(
        title=case.title,
        model=name,
        trainer=case.trainer.name,
        summary=case.summary,
        inputs=len(p.signature.inputs),
        context_fields=len(p.signature.context_fields),
        train_rows=p.trained.rows,
        train_positives=p.trained.positives,
        epochs=p.trained.epochs,
        verification=verification,
        cells=cells,
        deliveries=deliveries.cells,
        perf_cpu_ms=perf_cpu,
    )
    return run, others


def _merged(others: Sequence[OtherProcess]) -> list[OtherProcess]:
    """One entry per process over both models' cells, busiest first."""
    total: dict[tuple[int, str], float] = {}
    for o in others:
        total[(o.pid, o.name)] = total.get((o.pid, o.name), 0.0) + o.cpu_s
    return sorted((OtherProcess(pid, name, cpu) for (pid, name), cpu in total.items()), key=lambda o: -o.cpu_s)


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
        group="bench-inference",
        profile_to=profile_to,
    )


async def _first_score(target: str, p: Prepared, entity: str) -> None:
    """Return when Score answers for ``entity`` (registry replayed, model loaded in Triton)."""
    client = ScoreClient(target, p.name, p.case.entity, p.contexts)
    try:
        request = client.request(entity)
        await await_answer(
            lambda: client.answer(request), retry=(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
        )
    finally:
        await client.close()


async def _profile(
    args: argparse.Namespace, home: Path, registry: str, predictions: str, stub: str, p: Prepared
) -> list[ProfileSummary]:
    """Inference again under cProfile (``home`` the timed one's, stopped), once for Score and once for
    ScoreBatch of ``p``'s model at concurrency 16 for ``--seconds`` each (untimed for the tables); both
    profiles go to bench/inference/profile.txt. Each waits for its Prediction deliveries before it is stopped
    (so the profile holds them). Returns where each one's main thread spent its time."""
    single = batches(p.entities, 1, 1000, seed=args.seed)
    many = batches(p.entities, args.batch_rows, 100, seed=args.seed)
    entity = p.case.entity
    parts, summaries = [], []
    for contender, handler, make, picks in (
        (SCORE, "score", lambda target: ScoreClient(target, p.name, entity, p.contexts, SCORE), single),
        (BATCH, "score_batch", lambda target: ScoreBatchClient(target, p.name, entity, p.contexts, BATCH), many),
    ):
        stats = home / f"inference-{handler}.prof"
        profiled = _inference(home, args, registry, predictions, stub, profile_to=stats)
        parts.append(
            await profile_inference(
                profiled,
                lambda target: _first_score(target, p, single[0][0]),
                make,
                picks,
                concurrency=16,
                seconds=args.seconds,
                settle=lambda process: await_drained(process.admin_url),
            )
        )
        spent = cumulative_seconds(stats, [LOOP, POLL, (SCORING, handler), DELIVER])
        summaries.append(
            ProfileSummary(
                contender, 16, spent[LOOP] - spent[POLL], spent[(SCORING, handler)], spent[DELIVER], spent[POLL]
            )
        )
    (HERE / "profile.txt").write_text("\n\n".join(parts))
    print(f"profile written to {HERE / 'profile.txt'}", flush=True)
    return summaries


async def _verify(
    p: Prepared,
    sample: Sequence[str],
    triton: TritonClient,
    user: UserClient,
    score: ScoreClient,
    batch: ScoreBatchClient,
) -> Verification:
    """For each entity of ``sample``: Triton's score (one row per call) equals the eager module's, Score's and
    (c)'s; one ScoreBatch of all of them answers in order, each equal to Score's. ``BenchError`` naming the
    first entity off by more than ``TOLERANCE``."""
    direct = [float((await triton.outputs(triton.prepare([e])))[0][0, 0]) for e in sample]
    eager = model.eager_scores(p.trained, [p.rows[e] for e in sample])
    scored = [(await score.answer(score.request(e))).score for e in sample]
    mine = [await user.score(e) for e in sample]
    ids = [f"verify-{j}" for j in range(len(sample))]
    answer = await batch.answer(batch.request(sample, ids))
    got_ids = [r.response.request_id for r in answer.results]
    if got_ids != ids:
        raise BenchError(f"ScoreBatch answered request ids {got_ids[:5]}... for {ids[:5]}...")
    batched = [r.response.score for r in answer.results]
    checks = {
        "the eager module vs Triton": (eager, direct),
        "Score vs Triton": (scored, direct),
        "(c) vs Triton": (mine, direct),
        "ScoreBatch vs Score": (batched, scored),
    }
    worst: dict[str, float] = {}
    for what, (ours, reference) in checks.items():
        diffs = [abs(a - b) for a, b in zip(ours, reference, strict=True)]
        worst[what] = max(diffs)
        if worst[what] > TOLERANCE:
            j = diffs.index(worst[what])
            raise BenchError(
                f"{p.case.title}, {what}: entity {sample[j]} scores {ours[j]} vs {reference[j]} (|diff| > {TOLERANCE})"
            )
    return Verification(
        entities=len(sample),
        with_missing=sum(any(v is None for v in p.values[e]) for e in sample),
        eager_vs_triton=worst["the eager module vs Triton"],
        score_vs_triton=worst["Score vs Triton"],
        user_vs_triton=worst["(c) vs Triton"],
        batch_vs_score=worst["ScoreBatch vs Score"],
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_benchmark("inference", argv, parse_args(argv), bench, tables, results_markdown, FAILURES)


if __name__ == "__main__":
    sys.exit(main())
