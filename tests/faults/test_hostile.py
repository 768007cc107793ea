"""The hostile corpus through Kafka and through every gRPC method of every service.

Kafka: the corpus of ``tests.faults.hostile`` is the "fault" of a scenario, so the steady load flows around
it and every property of ``tests.faults.harness`` is checked too (no partition stalls: the good record
after each bad one reaches the lake; no raw PAN anywhere). Each hostile record must end as its ``Expect``
says, with a specific reason (never UNSPECIFIED), and no dead letter may exceed 1 MiB.

gRPC: every method of the five services gets undecodable bytes (INVALID_ARGUMENT), a request without
credentials when authentication is on (UNAUTHENTICATED), every string field 1 MiB long, every map
field with 50,000 entries: each answers a clear status within 15 s, never UNKNOWN or INTERNAL.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from elasticsearch import AsyncElasticsearch
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory

from tests.faults.harness import PREDICTIONS_INDEX, Report, lake_event_ids, read_since, run_scenario
from tests.faults.hostile import (
    DEAD_LETTER_LIMIT,
    MIB,
    DeadLetterSeen,
    Hostile,
    call,
    decode_dead_letter,
    internal_corpus,
    service_methods,
    upstream_corpus,
)
from tests.faults.load import SOURCE_TOPIC, Card, luhn_pan, transaction
from tests.faults.stack import FaultStack

pytestmark = pytest.mark.faults

RATE = float(os.environ.get("FAULTS_RATE", "120"))
SCORE_RATE = float(os.environ.get("FAULTS_SCORE_RATE", "12"))
SETTLE_S = 90.0
BAD_CODES = {"UNKNOWN", "INTERNAL"}


async def send_corpus(stack: FaultStack, items: list[Hostile], prefix: str) -> list[str]:
    """Send each item (then a good record on the same partition for upstream items); the good event ids."""
    rng = random.Random(5)
    plain = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", max_request_size=64 * MIB)
    packed = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", compression_type="gzip", max_request_size=64 * MIB
    )
    await plain.start()
    await packed.start()
    goods: list[str] = []
    try:
        for i, item in enumerate(items):
            producer = packed if item.compress else plain
            partitions = sorted(await producer.partitions_for(item.topic))
            targets = partitions if item.all_partitions else [partitions[i % len(partitions)]]
            for partition in targets:
                meta = await producer.send_and_wait(
                    item.topic, item.value, key=f"{prefix}-k{i}".encode(), partition=partition, headers=item.headers
                )
                item.positions.append((meta.partition, meta.offset))
                if item.topic == SOURCE_TOPIC:
                    good = f"{prefix}-good{i}"
                    card = Card(f"{prefix}-gcard{i}", f"{prefix}-gcust{i}", luhn_pan(rng))
                    await plain.send_and_wait(
                        SOURCE_TOPIC,
                        orjson.dumps(transaction(good, card, rng)),
                        key=card.card_id.encode(),
                        partition=partition,
                    )
                    goods.append(good)
    finally:
        await plain.stop()
        await packed.stop()
    return goods


def judge(
    item: Hostile,
    letters: dict[tuple[str, int, int], list[DeadLetterSeen]],
    in_lake: set[str],
    truncated: AbstractSet[str] = frozenset(),
) -> str | None:
    """None when ``item`` ended as expected, else what happened instead (``truncated``: ids of prediction
    documents indexed with their ``entity`` map cut)."""
    expect = item.expect
    if expect.indexed_truncated and expect.indexed_truncated not in truncated:
        return "not indexed with its entity map cut and flagged"
    for partition, offset in item.positions:
        seen = letters.get((item.topic, partition, offset), [])
        lake = bool(item.event_id) and item.event_id in in_lake
        if expect.dead and not expect.accepted and not seen:
            return "not dead-lettered" + (" (in the lake)" if lake else "")
        if not expect.dead and seen:
            return f"dead-lettered {seen[0].reason}: {seen[0].message[:100]}"
        if expect.accepted and not expect.dead and not lake:
            return "not in the lake"
        if expect.accepted and expect.dead and not seen and not lake:
            return "neither in the lake nor dead-lettered"
        if seen and lake:
            return f"both in the lake and dead-lettered ({seen[0].reason})"
        for letter in seen:
            if letter.reason not in expect.dead:
                return f"reason {letter.reason} (expected {'/'.join(sorted(expect.dead))}): {letter.message[:100]}"
            own = {f"aimesh.{name}.dlq.v1" for name in expect.dlq_services}
            if own and letter.topic not in own:
                return f"dead-lettered on {letter.topic}, not on {'/'.join(sorted(own))}"
            text = letter.message.lower()
            if expect.message_must_contain and expect.message_must_contain.lower() not in text:
                return f"message does not name {expect.message_must_contain!r}: {letter.message[:100]}"
            if expect.message_must_not_contain and expect.message_must_not_contain.lower() in text:
                return f"message says {expect.message_must_not_contain!r}: {letter.message[:100]}"
            if letter.size > DEAD_LETTER_LIMIT:
                return f"dead letter of {letter.size} bytes (limit {DEAD_LETTER_LIMIT})"
    return None


def test_hostile_kafka_corpus(fault_stack: FaultStack) -> None:
    prefix = f"hostile-{int(time.time())}"
    items = upstream_corpus(prefix, SOURCE_TOPIC, random.Random(3)) + internal_corpus(prefix)
    goods: list[str] = []

    async def fault(mark: Callable[[str], None]) -> None:
        mark("corpus sending")
        goods.extend(await send_corpus(fault_stack, items, prefix))
        mark(f"corpus sent: {len(items)} kinds, {sum(len(i.positions) for i in items)} records")

    report = asyncio.run(
        run_scenario(fault_stack, "hostile-kafka", fault, rate=RATE / 2, score_rate=SCORE_RATE, after_s=10)
    )
    outcome = asyncio.run(settle(fault_stack, items, goods, prefix))
    for line in outcome.counts.items():
        print(f"  {line[0]}: {line[1]}")
    for failure in outcome.failures:
        print(f"  FAILED: {failure}")
    report.failures.extend(outcome.failures)
    report.assert_held()


async def settle(stack: FaultStack, items: list[Hostile], goods: list[str], prefix: str) -> Report:
    """Wait until the good records are in the lake and every item is resolved; judge each item."""
    report = Report("hostile-kafka corpus")
    deadline = time.monotonic() + SETTLE_S
    verdicts: dict[str, str | None] = {}
    in_lake: set[str] = set()
    while True:
        in_lake = set(await asyncio.to_thread(lake_event_ids, stack, prefix))
        letters: dict[tuple[str, int, int], list[DeadLetterSeen]] = {}
        dlq_topics = [t for t in await _topics(stack) if t.endswith("dlq.v1")]
        for record in await read_since(stack.bootstrap, {}, topics=dlq_topics):
            letter = decode_dead_letter(record)
            if letter is not None:
                letters.setdefault(letter.upstream, []).append(letter)
        truncated = await truncated_predictions(stack, [i.expect.indexed_truncated for i in items])
        verdicts = {item.name: judge(item, letters, in_lake, truncated) for item in items}
        if (set(goods) <= in_lake and not any(verdicts.values())) or time.monotonic() > deadline:
            break
        await asyncio.sleep(3.0)
    stalled = [g for g in goods if g not in in_lake]
    report.counts["good records after a bad one in the lake"] = f"{len(goods) - len(stalled)} / {len(goods)}"
    report.check(not stalled, f"{len(stalled)} good records behind a hostile one never reached the lake: {stalled[:3]}")
    for item in items:
        resolved = [letters.get((item.topic, p, o)) for p, o in item.positions]
        shown = resolved[0][0] if resolved and resolved[0] else None
        what = f"{shown.reason} ({shown.message[:70]!r}, {shown.topic})" if shown else "no dead letter"
        if item.event_id in in_lake:
            what = "accepted"
        report.counts[item.name] = what + ("" if verdicts[item.name] is None else "  <- WRONG")
        report.check(verdicts[item.name] is None, f"{item.name}: {verdicts[item.name]}")
    return report


async def truncated_predictions(stack: FaultStack, ids: list[str]) -> set[str]:
    """Which of ``ids`` are prediction documents whose ``entity`` map monitor cut (``truncated``)."""
    ids = [i for i in ids if i]
    if not ids:
        return set()
    async with AsyncElasticsearch(stack.elasticsearch.url, request_timeout=30) as es:
        if not await es.indices.exists(index=PREDICTIONS_INDEX):
            return set()
        reply = await es.mget(index=PREDICTIONS_INDEX, ids=ids, source_includes=["truncated"])
    return {d["_id"] for d in reply["docs"] if d.get("found") and "entity" in d["_source"].get("truncated", [])}


async def _topics(stack: FaultStack) -> set[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


# --- gRPC --------------------------------------------------------------------------------------------------


def inflate(message_type: pb_descriptor.Descriptor, *, strings: bool, maps: bool) -> Any:
    """A request whose top-level strings are 1 MiB (``strings``) or whose top-level maps hold 50,000
    entries (``maps``); both stay below the servers' 8 MiB message limit, so the handler sees them."""
    message = message_factory.GetMessageClass(message_type)()
    for f in message_type.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            if not maps:
                continue
            value_field = f.message_type.fields_by_name["value"]
            target = getattr(message, f.name)
            for i in range(50_000):
                if value_field.type == value_field.TYPE_STRING:
                    target[f"k{i}"] = "v"
                elif value_field.type == value_field.TYPE_DOUBLE:
                    target[f"k{i}"] = 1.0
                elif value_field.type == value_field.TYPE_MESSAGE:
                    target[f"k{i}"].SetInParent()
                else:
                    break
        elif strings and f.type == f.TYPE_STRING and not f.is_repeated:
            setattr(message, f.name, "a" * MIB)
    return message


def test_hostile_grpc_corpus(fault_stack: FaultStack) -> None:
    outcomes: dict[str, Counter[str]] = {}
    failures: list[str] = []
    auth_on = bool(fault_stack.metadata)
    md = fault_stack.metadata or None
    for service, method in service_methods():
        codes: Counter[str] = Counter()
        label = f"{service}.{method.name}"
        with fault_stack.sync_channel(service) as channel:
            for what, payload, metadata, want in (
                ("undecodable", b"\xff\xff\xff\xff\x0f", md, {"INVALID_ARGUMENT"}),
                ("truncated", b"\x0a\xff\x01abc", md, {"INVALID_ARGUMENT"}),
                ("no credentials", b"", None, {"UNAUTHENTICATED"} if auth_on else None),
                ("1 MiB strings", inflate(method.input_type, strings=True, maps=False).SerializeToString(), md, None),
                ("50k-entry maps", inflate(method.input_type, strings=False, maps=True).SerializeToString(), md, None),
            ):
                code = call(channel, method, payload, metadata)
                codes[f"{what}:{code}"] += 1
                if code in BAD_CODES or code == "DEADLINE_EXCEEDED":
                    failures.append(f"{label} {what}: {code}")
                elif want is not None and code not in want:
                    failures.append(f"{label} {what}: {code}, expected {'/'.join(sorted(want))}")
        outcomes[label] = codes
    print("\n=== hostile gRPC corpus")
    for label, codes in outcomes.items():
        print(f"  {label}: {', '.join(sorted(codes))}")
    for failure in failures:
        print(f"  FAILED: {failure}")
    assert not failures, failures
