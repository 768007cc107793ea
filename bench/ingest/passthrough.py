"""The anchor: a plain aiokafka consume -> produce loop with at-least-once delivery, as its own process.

``python -m bench.ingest.passthrough --inputs A B --output C --group G --expect N`` forwards every
record of the input topics (key, value and headers unchanged) to the output topic, batch by batch:
``getmany`` (at most ``--batch`` records), one ``send`` per record on an ``acks=all`` idempotent
producer, then, once Kafka acknowledged every send of the batch, a manual commit of the batch's
offsets. Nothing else: no decoding, no validation. It is the ceiling for a Python service on this
machine that forwards records without losing any.

It exits 0 after forwarding ``--expect`` records (committed), printing one JSON line with what it did;
a Kafka error propagates (non-zero exit).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

LINGER_MS = 5
"""The same linger as ``aimesh.core.bus.EventProducer``, so both contenders batch sends alike."""


async def forward(
    bootstrap: str, inputs: Sequence[str], output: str, *, group: str, expect: int, batch: int
) -> dict[str, Any]:
    """Forward records until ``expect`` were forwarded and committed; returns counts and timings."""
    consumer = AIOKafkaConsumer(
        *inputs,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=LINGER_MS)
    await producer.start()
    await consumer.start()
    forwarded, first_send, batches = 0, 0.0, 0
    try:
        while forwarded < expect:
            polled = await consumer.getmany(timeout_ms=500, max_records=batch)
            acks: list[asyncio.Future[Any]] = []
            offsets: dict[TopicPartition, int] = {}
            for tp, records in polled.items():
                for record in records:
                    acks.append(await producer.send(output, record.value, key=record.key, headers=record.headers))
                offsets[tp] = records[-1].offset + 1
            if not acks:
                continue
            first_send = first_send or time.time()
            await asyncio.gather(*acks)
            await consumer.commit(offsets)
            forwarded += len(acks)
            batches += 1
    finally:
        await consumer.stop()
        await producer.stop()
    last_ack = time.time()
    return {
        "forwarded": forwarded,
        "batches": batches,
        "seconds": round(last_ack - first_send, 3),
        "records_per_s": round(forwarded / (last_ack - first_send), 1) if forwarded else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True, help="stop after forwarding this many records")
    parser.add_argument("--batch", type=int, default=500, help="max records per getmany (ingest's INGEST_MAX_BATCH)")
    args = parser.parse_args(argv)
    report = asyncio.run(
        forward(args.bootstrap, args.inputs, args.output, group=args.group, expect=args.expect, batch=args.batch)
    )
    print(orjson.dumps(report).decode(), flush=True)


if __name__ == "__main__":
    main()
