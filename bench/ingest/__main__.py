"""``python -m bench.ingest``: the ingest service against the aiokafka passthrough anchor; see bench/README.md.

Creates this run's topics, publishes the generated records once, runs the anchor then the ingest
service (one after the other: the machine has few cores), prints the Markdown table and overwrites
bench/ingest/results.md. ``--code REV`` measures the ingest service of a git revision instead of the
working tree (``bench.ingest.code``). With ``--profile`` it then runs the ingest service a third time under
cProfile and writes the hot spots to bench/ingest/profile.txt. Topics are deleted at the end
(``--keep`` keeps them and the temporary directory). Exits 1 with the cause when a contender fails.
"""

from __future__ import annotations

import argparse
import io
import pstats
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.ingest.code import revision, working_tree
from bench.ingest.contenders import BenchError, RunSettings, run_ingest, run_passthrough
from bench.ingest.data import publish_input
from bench.ingest.machine import describe
from bench.ingest.report import BenchReport, results_markdown, table
from bench.ingest.topics import BenchTopics, create_topics, delete_topics
from bench.runner import run_benchmark

HERE = Path(__file__).resolve().parent
DEFAULT_RECORDS = 200_000
QUICK_RECORDS = 20_000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="records to generate (default 200,000)")
    size.add_argument("--quick", action="store_true", help=f"smoke run with {QUICK_RECORDS:,} records")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--malformed-fraction", type=float, default=0.005, help="share of broken records")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of every topic (default 6)")
    parser.add_argument("--batch", type=int, default=500, help="max records per poll, both contenders (default 500)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap (default 127.0.0.1:9092)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="limit per contender, seconds")
    parser.add_argument("--profile", action="store_true", help="also run ingest under cProfile -> profile.txt")
    parser.add_argument("--results", type=Path, default=HERE / "results.md", help="where to write results.md")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the temporary directory")
    parser.add_argument(
        "--code", metavar="REV", help="measure the ingest service of this git revision (default: the working tree)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.records = QUICK_RECORDS
    return args


async def bench(args: argparse.Namespace, workdir: Path, command: str) -> BenchReport:
    started = datetime.now(UTC)
    code = revision(args.code, workdir / "code") if args.code else working_tree()
    run_id = uuid.uuid4().hex[:8]
    topics = BenchTopics.for_run(run_id)
    await create_topics(args.bootstrap, topics, args.partitions)
    try:
        print(f"publishing {args.records:,} records to {', '.join(topics.inputs)} ...", flush=True)
        published = await publish_input(
            args.bootstrap, topics, records=args.records, seed=args.seed, malformed_fraction=args.malformed_fraction
        )
        print(f"published {published.records:,} in {published.seconds:.1f} s", flush=True)
        run = RunSettings(
            run_id=run_id,
            bootstrap=args.bootstrap,
            topics=topics,
            records=published.records,
            batch=args.batch,
            workdir=workdir,
            timeout_s=args.timeout,
            stall_s=120.0,
            pythonpath=code.pythonpath,
        )
        print("running the anchor (passthrough) ...", flush=True)
        anchor = await run_passthrough(run)
        print(f"anchor: {anchor.records_per_s:,.0f} records/s; running the ingest service ...", flush=True)
        ours = await run_ingest(run)
        print(f"ingest: {ours.records_per_s:,.0f} records/s", flush=True)
        if args.profile:
            await profile(run, code.description)
    finally:
        if not args.keep:
            await delete_topics(args.bootstrap, topics.all)
    return BenchReport(
        started=started,
        command=command,
        published=published,
        partitions=args.partitions,
        batch=args.batch,
        seed=args.seed,
        anchor=anchor,
        ours=ours,
        environment=describe(),
        code=code.description,
    )


async def profile(run: RunSettings, code: str) -> None:
    """Run ingest once more under cProfile; write the top functions (own time, cumulative) to profile.txt."""
    print("running the ingest service under cProfile ...", flush=True)
    stats_file = run.workdir / "ingest.prof"
    profiled = await run_ingest(run, name="ingest-profiled", profile_to=stats_file)
    text = io.StringIO()
    text.write(
        f"cProfile of the ingest service's event loop thread ({code}), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: "
        f"{profiled.records_in:,} records, {profiled.records_per_s:,.0f} records/s under the profiler\n"
    )
    for order in ("tottime", "cumulative"):
        text.write(f"\n=== top 35 by {order} ===\n")
        pstats.Stats(str(stats_file), stream=text).strip_dirs().sort_stats(order).print_stats(35)
    (HERE / "profile.txt").write_text(text.getvalue())
    print(f"profile written to {HERE / 'profile.txt'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_benchmark("ingest", argv, parse_args(argv), bench, table, results_markdown, (BenchError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
