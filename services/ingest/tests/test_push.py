"""The push intake: per-record answers, limits, DLQ entries with masked PII, nothing accepted without an ack."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.core.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from aimesh.core.sql import create_engine, migrate
from aimesh.core.testing import RecordingSender
from aimesh.ingest.api import IngestServiceApi
from aimesh.ingest.app import MIGRATIONS
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.push import PushIntake, PushLimits, PushRecord
from aimesh.ingest.registry import SourceRegistry
from aimesh.ingest.sources import load_sources, push_topic

SOURCES_FILE = Path(__file__).parent / "fixtures" / "sources.yaml"

SECRET = "push-secret"
PAN = "4111111111111111"


def token(value: str) -> str:
    return hmac.new(SECRET.encode(), value.encode(), hashlib.sha256).hexdigest()


def payment(event_id: str, **changes: Any) -> bytes:
    record = {
        "transaction_id": event_id,
        "card_id": "card-1",
        "card_number": PAN,
        "customer_id": "cust-1",
        "merchant_id": "m-1",
        "merchant_category": "grocery",
        "amount": 12.5,
        "currency": "EUR",
        "device_id": "d-1",
        "timestamp": "2025-01-01T10:00:00+00:00",
    }
    return orjson.dumps({k: v for k, v in (record | changes).items() if v is not None})


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[SourceCatalog]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
    await migrate(engine, MIGRATIONS)
    registry = SourceRegistry(engine)
    card_transactions, chargebacks = load_sources(SOURCES_FILE)
    await registry.apply([card_transactions, chargebacks.model_copy(update={"topic": ""})])
    catalog = SourceCatalog(registry, Tokenizer(SECRET))
    await catalog.refresh()
    yield catalog
    await engine.dispose()


def intake(catalog: SourceCatalog, sender: Any, **limits: Any) -> PushIntake:
    return PushIntake(catalog, sender, dlq_topic="dlq", limits=PushLimits(**limits))


async def test_valid_records_go_upstream_and_invalid_ones_to_the_dlq_with_answers_in_order(
    catalog: SourceCatalog,
) -> None:
    sender = RecordingSender()
    records = [
        PushRecord(payment("t1"), headers={"origin": "branch-7"}),
        PushRecord(payment("t2", amount=-1)),
        PushRecord(b"{not json"),
        PushRecord(payment("t3", merchant_category="casino")),
        PushRecord(payment("t4"), event_id="t4"),
        PushRecord(payment("t5"), event_id="other"),
    ]
    outcomes = await intake(catalog, sender).publish("card_transactions", records)

    assert [(o.index, o.event_id, o.reason, o.field) for o in outcomes] == [
        (0, "t1", "", ""),
        (1, "t2", "OUT_OF_RANGE", "amount"),
        (2, "", "MALFORMED_PAYLOAD", ""),
        (3, "t3", "NOT_ALLOWED_VALUE", "merchant_category"),
        (4, "t4", "", ""),
        (5, "other", "EVENT_ID_MISMATCH", "transaction_id"),
    ]
    assert [(r.topic, r.value, r.key) for r in sender.raw] == [
        ("bank.card-transactions", records[0].payload, "card-1"),
        ("bank.card-transactions", records[4].payload, "card-1"),
    ]
    assert ("origin", b"branch-7") in sender.raw[0].headers
    letters = [s.message for s in sender.on("dlq")]
    assert all(isinstance(m, deadletter_pb2.DeadLetter) for m in letters) and len(letters) == 4
    out_of_range = letters[0]
    assert isinstance(out_of_range, deadletter_pb2.DeadLetter)
    assert out_of_range.source == "card_transactions" and out_of_range.event_id == "t2"
    assert out_of_range.reason_code == deadletter_pb2.REASON_CODE_OUT_OF_RANGE and not out_of_range.HasField("upstream")
    assert list(out_of_range.masked_fields) == ["card_number"]
    assert orjson.loads(out_of_range.original_payload)["card_number"] == token(PAN)
    for letter in letters:
        assert isinstance(letter, deadletter_pb2.DeadLetter)
        assert PAN.encode() not in letter.original_payload and PAN not in letter.message


async def test_push_only_sources_go_to_their_push_topic(catalog: SourceCatalog) -> None:
    sender = RecordingSender()
    payload = b'{"chargeback_id":"c1","transaction_id":"t1","card_id":"k","reason":"fraud","timestamp":1714564800000}'
    [outcome] = await intake(catalog, sender).publish("chargebacks", [PushRecord(payload)])
    assert outcome.accepted and sender.raw[0].topic == push_topic("chargebacks") == "aimesh.ingest.push.chargebacks.v1"


async def test_request_errors_name_the_limit_or_the_known_sources(catalog: SourceCatalog) -> None:
    sender = RecordingSender()
    small = intake(catalog, sender, max_records=2, max_record_bytes=100)
    with pytest.raises(InvalidArgument, match=r"3 records > limit 2 per call \(INGEST_PUSH_MAX_RECORDS\)"):
        await small.publish("card_transactions", [PushRecord(b"{}")] * 3)
    with pytest.raises(ResourceExhausted, match=r"records\[1\].payload: 2\d\d bytes > limit 100 bytes per record"):
        await small.publish("card_transactions", [PushRecord(b"{}"), PushRecord(payment("t1"))])
    with pytest.raises(NotFound, match=r"unknown source 'nope'; known sources: \['card_transactions', 'chargebacks'\]"):
        await small.publish("nope", [])
    with pytest.raises(InvalidArgument, match="source is required"):
        await small.publish("", [])
    assert not sender.raw and not sender.sent, "nothing is sent for a refused call"


async def test_kafka_failure_is_unavailable_never_a_partial_accept(catalog: SourceCatalog) -> None:
    sender = RecordingSender(fail_times=1)
    with pytest.raises(Unavailable, match="no record of this call is accepted, retry it"):
        await intake(catalog, sender).publish(
            "card_transactions", [PushRecord(payment("t1")), PushRecord(payment("t2"))]
        )


class HangingSender(RecordingSender):
    """A broker that never answers (what aiokafka does while it cannot reach Kafka)."""

    async def send_raw(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_unacknowledged_records_time_out_as_unavailable(catalog: SourceCatalog) -> None:
    slow = intake(catalog, HangingSender(), ack_timeout_s=0.2)
    with pytest.raises(Unavailable, match=r"within 0.2s \(TimeoutError"):
        await slow.publish("card_transactions", [PushRecord(payment("t1"))])


async def test_already_masked_pii_is_accepted_as_its_token(catalog: SourceCatalog) -> None:
    sender = RecordingSender()
    masked = payment("t9", card_number=token(PAN))
    header = {"aimesh-pii-masked": "card_number"}
    [plain, marked] = await intake(catalog, sender).publish(
        "card_transactions", [PushRecord(masked), PushRecord(masked, headers=header)]
    )
    assert (plain.reason, plain.field) == ("NOT_ALLOWED_VALUE", "card_number")
    assert marked.accepted
    letter = sender.on("dlq")[0].message
    assert isinstance(letter, deadletter_pb2.DeadLetter)
    assert orjson.loads(letter.original_payload)["card_number"] == token(token(PAN)), "an unmarked value is raw PII"


async def test_publish_rpc_counts_and_per_record_results(catalog: SourceCatalog) -> None:
    sender = RecordingSender()
    api = IngestServiceApi(intake(catalog, sender), SourceRegistry(create_engine("sqlite+aiosqlite://")), catalog)
    request = ingest_pb2.PublishRequest(
        source="card_transactions",
        records=[ingest_pb2.Record(payload=payment("t1")), ingest_pb2.Record(payload=payment("t2", amount="x"))],
    )
    context: Any = object()
    response = await api.Publish(request, context)
    assert (response.accepted_count, response.rejected_count) == (1, 1)
    ok, bad = response.results
    assert ok.status == ingest_pb2.RECORD_STATUS_ACCEPTED and ok.event_id == "t1"
    assert (
        bad.status == ingest_pb2.RECORD_STATUS_REJECTED and bad.reason_code == deadletter_pb2.REASON_CODE_TYPE_MISMATCH
    )
    assert bad.field == "amount" and bad.index == 1 and "amount must be a number" in bad.message


async def test_a_record_carries_the_calls_trace_context_unless_it_has_its_own(catalog: SourceCatalog) -> None:
    sender = RecordingSender()
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    records = [PushRecord(payment("t1")), PushRecord(payment("t2"), headers={"traceparent": own})]
    with TracerProvider().get_tracer(__name__).start_as_current_span("Publish") as call:
        await intake(catalog, sender).publish("card_transactions", records)
    parents = [dict(r.headers).get("traceparent", b"").decode() for r in sender.raw]
    assert parents[0].split("-")[1:3] == [
        format(call.get_span_context().trace_id, "032x"),
        format(call.get_span_context().span_id, "016x"),
    ]
    assert parents[1] == own
