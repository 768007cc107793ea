"""``python -m aimesh.examples.retail``: publish the retail scenario or an interaction log to Kafka, or print a sample.

python -m aimesh.examples.retail publish --events 100000 --seed 42 --bootstrap 127.0.0.1:9092
python -m aimesh.examples.retail publish --interactions ml-100k/u.data [--shift-end now]
python -m aimesh.examples.retail sample --events 20 --seed 42
python -m aimesh.examples.retail demo --events 30000 --requests 1000   (needs `aimesh up`)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from aimesh.examples.banking.generator import to_us
from aimesh.examples.retail.generator import GeneratorConfig, default_population, generate_events, now_ms
from aimesh.examples.retail.interactions import BadLine, Interaction, parse_lines, to_event
from aimesh.examples.retail.model import EventType, GeneratedEvent, Stream
from aimesh.examples.retail.publisher import DEFAULT_TOPICS, PublishSummary, publish_events, retail_producer

SHOWN_BAD_LINES = 20


def _moment(text: str) -> datetime:
    if text == "now":
        return now_ms()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset, e.g. {text}Z")
    return moment


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aimesh.examples.retail", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("publish", "publish to Kafka"), ("sample", "print records as JSON lines")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--events", type=int, default=10_000, help="interactions (default 10000; + the catalogue)")
        cmd.add_argument("--seed", type=int, default=42)
        cmd.add_argument("--end", type=_moment, default=None, help="RFC 3339 time of the last record (default: now)")
        cmd.add_argument("--span-days", type=float, default=30.0, help="time covered, ending at --end")
        cmd.add_argument("--malformed-fraction", type=float, default=0.03)
    demo = sub.add_parser("demo", help="run the whole retail scenario on the running mesh and print a summary")
    demo.add_argument("--events", type=int, default=30_000, help="interactions to publish (default 30000)")
    demo.add_argument("--requests", type=int, default=1_000, help="Recommend calls over gRPC (default 1000)")
    publish = sub.choices["publish"]
    publish.add_argument("--bootstrap", default="127.0.0.1:9092")
    publish.add_argument("--interactions-topic", default=DEFAULT_TOPICS[Stream.INTERACTIONS])
    publish.add_argument("--items-topic", default=DEFAULT_TOPICS[Stream.ITEMS])
    replay = publish.add_argument_group(
        "interaction-log replay", "publish FILE (tab-separated `user item rating timestamp`) instead of generated data"
    )
    replay.add_argument("--interactions", type=Path, metavar="FILE", help="e.g. MovieLens' u.data")
    replay.add_argument(
        "--event-type",
        choices=[e.value for e in EventType],
        default=EventType.PURCHASE.value,
        help="event_type of every replayed line (default purchase)",
    )
    replay.add_argument(
        "--shift-end",
        type=_moment,
        default=None,
        metavar="TIME",
        help="move every time by one offset so that the newest line is at TIME (RFC 3339 or 'now'); default: as logged",
    )
    replay.add_argument("--strict", action="store_true", help="publish nothing if any line is bad (exit status 2)")
    return parser


def _config(args: argparse.Namespace) -> GeneratorConfig:
    return GeneratorConfig(
        events=args.events,
        seed=args.seed,
        end=args.end or now_ms(),
        span=timedelta(days=args.span_days),
        malformed_fraction=args.malformed_fraction,
    )


def _log_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace", newline="") as lines:
        yield from lines


class _Scan:
    """A first pass over the log: good lines, the bad ones (the first ``SHOWN_BAD_LINES`` kept), newest time."""

    def __init__(self, path: Path) -> None:
        self.good = 0
        self.bad = 0
        self.shown: list[BadLine] = []
        self.newest_s: int | None = None
        for parsed in parse_lines(_log_lines(path)):
            if isinstance(parsed, BadLine):
                self.bad += 1
                if len(self.shown) < SHOWN_BAD_LINES:
                    self.shown.append(parsed)
                continue
            self.good += 1
            self.newest_s = parsed.timestamp_s if self.newest_s is None else max(self.newest_s, parsed.timestamp_s)

    def report(self, path: Path, console: Console) -> None:
        if not self.bad:
            return
        console.print(f"{path}: {self.bad} bad line(s), not published:")
        for bad in self.shown:
            console.print(f"  line {bad.line}: {bad.reason}", markup=False, highlight=False)
        if self.bad > len(self.shown):
            console.print(f"  ... and {self.bad - len(self.shown)} more")


def _replayed(path: Path, event_type: EventType, shift_us: int) -> Iterator[GeneratedEvent]:
    for parsed in parse_lines(_log_lines(path)):
        if isinstance(parsed, Interaction):
            yield to_event(parsed, event_type=event_type, shift_us=shift_us)


async def _send(
    args: argparse.Namespace, console: Console, events: Iterator[GeneratedEvent], total: int
) -> PublishSummary:
    topics = {Stream.INTERACTIONS: args.interactions_topic, Stream.ITEMS: args.items_topic}
    columns = (TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("publish", total=total)
        async with retail_producer(args.bootstrap) as producer:
            return await publish_events(producer, events, topics=topics, on_acked=lambda n: progress.advance(task, n))


def _replay(args: argparse.Namespace, console: Console) -> int:
    path: Path = args.interactions
    if not path.is_file():
        console.print(f"--interactions: {path} is not a readable file")
        return 2
    scan = _Scan(path)
    scan.report(path, console)
    if scan.newest_s is None:
        console.print(f"{path}: no interaction line (expected user<TAB>item<TAB>rating<TAB>timestamp)")
        return 2
    if args.strict and scan.bad:
        console.print("--strict: nothing published")
        return 2
    shift_us = to_us(args.shift_end) - scan.newest_s * 1_000_000 if args.shift_end is not None else 0
    events = _replayed(path, EventType(args.event_type), shift_us)
    _report(asyncio.run(_send(args, console, events, scan.good)), console)
    return 0


def _report(summary: PublishSummary, console: Console) -> None:
    rate = summary.total / summary.seconds if summary.seconds else 0.0
    console.print(f"published {summary.total} records in {summary.seconds:.1f}s ({rate:,.0f}/s)")
    for topic, count in sorted(summary.per_topic.items()):
        console.print(f"  {topic}: {count}")
    console.print(f"  interactions by type: {dict(summary.event_types.most_common())}")
    console.print(f"  malformed: {len(summary.malformed)} {dict(sorted(summary.malformed_by_kind.items()))}")
    console.print(f"  distinct users / items: {len(summary.users)} / {len(summary.items)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    if args.command == "demo":
        from aimesh.examples.retail.demo import run_demo

        return run_demo(args.events, args.requests, Console())
    if args.command == "sample":
        out = sys.stdout.buffer
        for event in generate_events(_config(args)):
            out.write(event.value + b"\n")
        return 0
    if args.interactions is not None:
        return _replay(args, console)
    config = _config(args)
    items, _ = default_population(config.events)
    generated = generate_events(config)
    _report(asyncio.run(_send(args, console, generated, config.events + items)), console)
    return 0
