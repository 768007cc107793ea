"""Undeclared fields (drop, keep, reject) and PANs outside declared PII fields: none survives in what ingest
emits (canonical record, dead letter with its payload copy and headers, lake row)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimesh.core.events import Event
from aimesh.core.pan import luhn_valid
from aimesh.core.testing import RecordingSender
from aimesh.ingest import metrics
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.pipeline import IngestPipeline
from aimesh.ingest.registry import StoredSource
from aimesh.ingest.sources import SourceDefinition, UndeclaredFields, load_sources

SOURCES_FILE = Path(__file__).parent / "fixtures" / "sources.yaml"
TOPIC = "up.tx"
TOKENIZER = Tokenizer("s")


def definition(policy: UndeclaredFields) -> SourceDefinition:
    source = load_sources(SOURCES_FILE, topic_overrides={"card_transactions": TOPIC})[0]
    return source.model_copy(update={"undeclared_fields": policy})


class OneSource:
    def __init__(self, source: SourceDefinition) -> None:
        self.source = source

    async def current(self) -> list[StoredSource]:
        return [StoredSource(self.source, datetime.now(UTC))]


async def pipeline_for(policy: UndeclaredFields, root: Path) -> tuple[IngestPipeline, RecordingSender]:
    catalog = SourceCatalog(OneSource(definition(policy)), TOKENIZER)
    await catalog.refresh()
    sender = RecordingSender()
    return IngestPipeline(catalog, sender, lake_root=root, records_topic="rec", dlq_topic="dlq"), sender


def transaction(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{n}",
        "card_id": "c-1",
        "card_number": "4000056655665556",
        "customer_id": "u-1",
        "merchant_id": "m-1",
        "amount": 10.0,
        "device_id": "d-1",
        "timestamp": "2024-05-01T12:00:00Z",
    } | changes


def event(offset: int, payload: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> Event:
    return Event(topic=TOPIC, partition=0, offset=offset, key=b"k", value=payload, headers=headers, timestamp_ms=0)


async def test_undeclared_fields_are_dropped_and_counted_by_default(tmp_path: Path) -> None:
    pipeline, sender = await pipeline_for(UndeclaredFields.DROP, tmp_path)
    counter = metrics.UNDECLARED_DROPPED.labels("card_transactions")
    before = counter._value.get()

    await pipeline.handle_batch([event(0, orjson.dumps(transaction(0, note="x", extra={"a": 1})))])

    (_, record, _, _), *_ = sender.on("rec")
    assert "note" not in record.attributes and "extra" not in record.attributes
    assert counter._value.get() - before == 2


async def test_undeclared_fields_are_rejected_by_name_when_the_source_says_so(tmp_path: Path) -> None:
    pipeline, sender = await pipeline_for(UndeclaredFields.REJECT, tmp_path)

    await pipeline.handle_batch([event(0, orjson.dumps(transaction(0, note="x", extra=1)))])

    assert sender.on("rec") == []
    (_, letter, _, _), *_ = sender.on("dlq")
    assert letter.field == "note"
    assert letter.message.startswith("undeclared fields note, extra (the source's undeclared_fields is reject")


async def test_a_pan_in_a_kept_field_and_in_a_header_is_tokenised(tmp_path: Path) -> None:
    pan = "4111 1111 1111 1111"
    token = TOKENIZER.token("4111111111111111")
    pipeline, sender = await pipeline_for(UndeclaredFields.KEEP, tmp_path)
    good = orjson.dumps(transaction(0, memo=f"paid with {pan}", merchant_id="4111111111111111"))
    bad = orjson.dumps(transaction(1, amount=-1, memo=pan))

    await pipeline.handle_batch([event(0, good), event(1, bad, (("x-pan", pan.encode()),))])

    (_, record, _, _), *_ = sender.on("rec")
    assert record.attributes["memo"].string_value == f"paid with {token}"
    assert record.attributes["merchant_id"].string_value == token
    (_, letter, _, _), *_ = sender.on("dlq")
    assert [(h.key, h.value) for h in letter.original_headers] == [("x-pan", token.encode())]
    assert orjson.loads(letter.original_payload)["memo"] == token
    assert "PANs in memo replaced by their tokens" in letter.message
    assert "PANs in headers x-pan replaced by their tokens" in letter.message


PANS = (
    st.integers(min_value=12, max_value=18)
    .flatmap(lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n))
    .map(lambda body: next(body + d for d in "0123456789" if luhn_valid(body + d)))
)
SEPARATORS = st.sampled_from(["", " ", "-"])


def written(pan: str, separator: str) -> str:
    return separator.join(pan[i : i + 4] for i in range(0, len(pan), 4)) if separator else pan


def nested(value: str, shape: int) -> Any:
    return [[value], {"k": value}, {"a": [1, {"b": value}]}, {value: 1}][shape]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pan=PANS,
    separator=SEPARATORS,
    where=st.sampled_from(["header", "undeclared", "nested", "declared", "entity", "number"]),
    valid=st.booleans(),
    policy=st.sampled_from(list(UndeclaredFields)),
    shape=st.integers(min_value=0, max_value=3),
)
async def test_no_raw_pan_survives_in_anything_ingest_emits(
    tmp_path: Path, pan: str, separator: str, where: str, valid: bool, policy: UndeclaredFields, shape: int
) -> None:
    text = written(pan, separator)
    fields: dict[str, Any] = {}
    headers: tuple[tuple[str, bytes], ...] = ()
    if where == "header":
        headers = (("x-ref", f"ref {text}".encode()),)
    elif where == "undeclared":
        fields["memo"] = f"card {text} ok"
    elif where == "nested":
        fields["memo"] = nested(text, shape)
    elif where == "declared":
        fields["device_id"] = f"dev {text}"
    elif where == "entity":
        fields["card_id"] = text
    else:
        fields["ref"] = int(pan)
    if not valid:
        fields["amount"] = -1.0
    root = tmp_path / f"{where}-{valid}-{policy.value}-{pan}-{len(separator)}"
    pipeline, sender = await pipeline_for(policy, root)

    await pipeline.handle_batch([event(0, orjson.dumps(transaction(0, **fields)), headers)])

    sent = sender.on("rec") + sender.on("dlq")
    emitted = [message.SerializeToString() for _, message, _, _ in sent]
    emitted += [f"{message} {key} {ce_id}".encode() for _, message, key, ce_id in sent]
    emitted += [pq.read_table(path).to_string(show_metadata=False).encode() for path in root.rglob("*.parquet")]
    assert emitted
    for blob in emitted:
        digits_only = re.sub(rb"[ -]", b"", blob)
        assert pan.encode() not in digits_only, (where, valid, policy, blob[:400])
