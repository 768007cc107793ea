"""ingest against real Kafka and the lake: PANs in headers and undeclared fields, implausible event times.

The issue's leaks: a PAN in a Kafka header was kept raw in the dead letter's ``original_headers``, one
in an undeclared payload field passed into the canonical record. Here the banking pack's sources are
registered with ``undeclared_fields: keep`` for transactions (so the undeclared field does reach the
canonical record) and records with PANs hidden in headers, undeclared and nested fields, declared
strings and undecodable bytes go through the in-process consumer; no raw PAN (separators ignored) is
in any canonical or dead-letter record (value, key, headers) or in the lake. A record dated a century
ahead and one in epoch seconds are dead-lettered as INVALID_EVENT_TIME with the reason.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core import lake
from aimesh.core.bus import EventProducer
from aimesh.core.pan import Tokenizer
from aimesh.core.testing import run_until
from aimesh.ingest.app import build_consumer, build_pipeline
from aimesh.ingest.settings import IngestSettings
from tests.integration.ingest_sources import BANKING_SOURCES, ingest_catalog
from tests.integration.test_ingest_pipeline import consumed, read_topic

pytestmark = pytest.mark.integration

SECRET = "integration-secret"
PANS = ("4111111111111111", "5500005555555559", "378282246310005", "6011000990139424", "4000056655665556")


def transaction(n: int, **changes: Any) -> bytes:
    record = {
        "transaction_id": f"tx-pii-{n}",
        "card_id": f"card-{n}",
        "card_number": PANS[4],
        "customer_id": "cust-1",
        "merchant_id": "merch-1",
        "merchant_category": "grocery",
        "amount": 12.5,
        "currency": "EUR",
        "country": "DE",
        "device_id": "dev-1",
        "channel": "pos",
        "timestamp": int(time.time() * 1000) - 60_000,
    }
    return orjson.dumps(record | changes)


def sources_keeping_undeclared(path: Path) -> Path:
    document = yaml.safe_load(BANKING_SOURCES.read_text())
    for source in document["sources"]:
        if source["name"] == "card_transactions":
            source["undeclared_fields"] = "keep"
    path.write_text(yaml.safe_dump(document))
    return path


async def test_no_pan_leaks_through_headers_or_undeclared_fields_and_implausible_times_are_rejected(  # type: ignore[no-untyped-def]
    endpoints, make_topic, unique, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    tx_topic, cb_topic = await make_topic("pii-tx"), await make_topic("pii-cb")
    records_topic, dlq_topic = await make_topic("pii-records"), await make_topic("pii-dlq", partitions=1)
    visa, master, amex, discover, _ = PANS
    grouped = "4111 1111 1111 1111"
    sent: list[tuple[bytes, list[tuple[str, bytes]]]] = [
        # accepted: a PAN in an undeclared field, a nested one, in a declared string, in a header
        (transaction(1, memo=f"paid with {grouped}", extra={"n": [1, {"pan": master}]}), [("x-ref", amex.encode())]),
        (transaction(2, device_id=f"pos-{discover}"), [("x-card", f"{visa}".encode())]),
        # rejected: PANs in the headers, an undeclared field and the rejected value itself
        (transaction(3, amount=-1.0, memo=master), [("x-pan", grouped.encode()), ("plain", b"v")]),
        (transaction(4, currency=visa), [("x-pan", amex.encode())]),
        # undecodable bytes holding PANs
        (b'{"transaction_id": "tx-pii-5", "memo": "4111-1111-1111-1111", "n": 5500005555555559', []),
        # implausible event times
        (transaction(6, timestamp=f"{time.gmtime().tm_year + 101}-01-01T00:00:00Z"), []),
        (transaction(7, timestamp=int(time.time())), []),
    ]
    async with EventProducer(bootstrap, source="upstream") as upstream:
        acks = [await upstream.send_raw(tx_topic, value, key=b"k", headers=headers) for value, headers in sent]
        for ack in acks:
            await ack

    settings = IngestSettings(
        kafka_bootstrap=bootstrap,
        consumer_group=f"ingest-pii-{unique}",
        sources_file=sources_keeping_undeclared(tmp_path / "sources.yaml"),
        source_topics={"card_transactions": tx_topic, "chargebacks": cb_topic},
        records_topic=records_topic,
        dlq_topic=dlq_topic,
        data_dir=tmp_path,
        lake_dir=tmp_path / "lake",
        pii_secret=SECRET,
    )
    async with EventProducer(bootstrap, source="ingest") as producer, ingest_catalog(settings) as catalog:
        consumer = build_consumer(settings, build_pipeline(settings, producer, None, catalog))
        before = consumed(tx_topic)
        await run_until(consumer, lambda: consumed(tx_topic) - before >= len(sent), within_s=90.0)

    canonical = await read_topic(bootstrap, records_topic, f"it-rec-{unique}", 2)
    dead = await read_topic(bootstrap, dlq_topic, f"it-dlq-{unique}", 5)
    assert sorted(e.id for e in canonical) == ["tx-pii-1", "tx-pii-2"]
    token = Tokenizer(SECRET).token
    records = {r.event_id: r for r in (e.parse(events_pb2.CanonicalRecord) for e in canonical)}
    assert records["tx-pii-1"].attributes["memo"].string_value == f"paid with {token(visa)}"
    assert token(master) in records["tx-pii-1"].attributes["extra"].string_value
    assert records["tx-pii-2"].attributes["device_id"].string_value == f"pos-{token(discover)}"

    letters = {d.upstream.offset: d for d in (e.parse(deadletter_pb2.DeadLetter) for e in dead)}
    assert sorted(letters) == [2, 3, 4, 5, 6]
    assert [(h.key, h.value) for h in letters[2].original_headers] == [("x-pan", token(visa).encode()), ("plain", b"v")]
    assert orjson.loads(letters[2].original_payload)["memo"] == token(master)
    assert "PANs in headers x-pan replaced by their tokens" in letters[2].message
    assert deadletter_pb2.ReasonCode.Name(letters[3].reason_code) == "REASON_CODE_NOT_ALLOWED_VALUE"
    assert deadletter_pb2.ReasonCode.Name(letters[4].reason_code) == "REASON_CODE_MALFORMED_PAYLOAD"
    for offset in (5, 6):
        assert deadletter_pb2.ReasonCode.Name(letters[offset].reason_code) == "REASON_CODE_INVALID_EVENT_TIME"
        assert letters[offset].field == "timestamp"
    assert "100 years ahead of ingest's clock (max future skew 300 s)" in letters[5].message
    assert "read as epoch_millis is 1970-01-2" in letters[6].message
    assert "is the source's event_time_unit epoch_seconds?" in letters[6].message

    root = tmp_path / "lake"
    table = lake.dataset(root, "card_transactions").to_table()
    assert sorted(table.column("event_id").to_pylist()) == ["tx-pii-1", "tx-pii-2"]
    blobs = [e.value + (e.key or b"") + b"".join(k.encode() + v for k, v in e.headers) for e in canonical + dead]
    blobs += [p.read_bytes() for p in root.rglob("*.parquet")]
    blobs.append(str(table.to_pylist()).encode())
    for blob in blobs:
        digits = re.sub(rb"[ -]", b"", blob)
        for pan in PANS:
            assert pan.encode() not in digits, (pan, blob[:300])
