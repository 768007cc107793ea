"""``python -m aimesh.examples.banking``: publish the banking scenario to Kafka, or print a sample.

python -m aimesh.examples.banking publish --events 100000 --seed 42 --bootstrap 127.0.0.1:9092
python -m aimesh.examples.banking sample --events 20 --seed 42
python -m aimesh.examples.banking demo --events 20000 --payments 1000   (needs `aimesh up`)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from aimesh.examples.banking.generator import GeneratorConfig, generate_events, now_ms
from aimesh.examples.banking.model import Stream
from aimesh.examples.banking.publisher import DEFAULT_TOPICS, PublishSummary, bank_producer, publish_events


def _end(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--end: {exc}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--end needs a UTC offset, e.g. {text}Z")
    return moment


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aimesh.examples.banking", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("publish", "publish to Kafka"), ("sample", "print records as JSON lines")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--events", type=int, default=10_000, help="number of records (default 10000)")
        cmd.add_argument("--seed", type=int, default=42)
        cmd.add_argument("--end", type=_end, default=None, help="RFC 3339 time of the last record (default: now)")
        cmd.add_argument("--span-days", type=float, default=30.0, help="time covered, ending at --end")
        cmd.add_argument("--malformed-fraction", type=float, default=0.005)
    demo = sub.add_parser("demo", help="run the whole fraud scenario on the running mesh and print a summary")
    demo.add_argument("--events", type=int, default=20_000, help="upstream events to publish (default 20000)")
    demo.add_argument("--payments", type=int, default=1_000, help="payments to score over gRPC (default 1000)")
    publish = sub.choices["publish"]
    publish.add_argument("--bootstrap", default="127.0.0.1:9092")
    publish.add_argument("--transactions-topic", default=DEFAULT_TOPICS[Stream.TRANSACTIONS])
    publish.add_argument("--chargebacks-topic", default=DEFAULT_TOPICS[Stream.CHARGEBACKS])
    return parser


def _config(args: argparse.Namespace) -> GeneratorConfig:
    return GeneratorConfig(
        events=args.events,
        seed=args.seed,
        end=args.end or now_ms(),
        span=timedelta(days=args.span_days),
        malformed_fraction=args.malformed_fraction,
    )


async def _publish(args: argparse.Namespace, console: Console) -> PublishSummary:
    config = _config(args)
    topics = {Stream.TRANSACTIONS: args.transactions_topic, Stream.CHARGEBACKS: args.chargebacks_topic}
    columns = (TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("publish", total=config.events)
        async with bank_producer(args.bootstrap) as producer:
            return await publish_events(
                producer,
                generate_events(config),
                topics=topics,
                on_acked=lambda n: progress.advance(task, n),
            )


def _report(summary: PublishSummary, console: Console) -> None:
    rate = summary.total / summary.seconds if summary.seconds else 0.0
    console.print(f"published {summary.total} records in {summary.seconds:.1f}s ({rate:,.0f}/s)")
    for topic, count in sorted(summary.per_topic.items()):
        console.print(f"  {topic}: {count}")
    console.print(f"  fraudulent transactions: {summary.fraud_transactions}")
    console.print(f"  malformed: {len(summary.malformed)} {dict(sorted(summary.malformed_by_kind.items()))}")
    console.print(f"  distinct card numbers: {len(summary.card_numbers)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    if args.command == "demo":
        from aimesh.examples.banking.demo import run_demo

        return run_demo(args.events, args.payments, Console())
    if args.command == "sample":
        out = sys.stdout.buffer
        for event in generate_events(_config(args)):
            out.write(event.value + b"\n")
        return 0
    _report(asyncio.run(_publish(args, console)), console)
    return 0
