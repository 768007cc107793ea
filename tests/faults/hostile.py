"""The hostile corpus: records a careless or malicious producer sends, and what each must become.

Upstream records (``upstream_corpus``) go to the bank's topic; each is followed on its partition by a good
record, so a record that stalls the partition shows as a good record that never reaches the lake. Internal
records (``internal_corpus``) carry the right CloudEvents type and a payload its consumer cannot use; they
go to every partition of the topic. ``Expect`` states the outcome: dead-lettered with one of the named
reasons (on the consumer's own ``aimesh.<service>.dlq.v1`` for internal topics), or accepted (in the
lake), or either one, never both and never nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import random
from dataclasses import dataclass, field

import grpc
import orjson
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from aimesh.api.feature.v1 import feature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.ingest.v1 import events_pb2 as ingest_events
from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.api.monitor.v1 import events_pb2 as monitor_events
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.api.training.v1 import events_pb2 as training_events
from aimesh.api.training.v1 import training_pb2
from aimesh.core.events import cloudevent_headers
from tests.faults.harness import KafkaRecord
from tests.faults.load import Card, luhn_pan, transaction

with contextlib.suppress(ImportError):  # the common DeadLetter contract (issue 13): registers its type
    importlib.import_module("aimesh.api.common.v1.deadletter_pb2")

MIB = 1024 * 1024
DEAD_LETTER_LIMIT = MIB
"""A dead letter must fit the producer's default 1 MiB request limit (larger payloads are kept by reference)."""


@dataclass(frozen=True)
class Expect:
    dead: frozenset[str] = frozenset()
    """Reason names (without ``REASON_CODE_``) accepted for a dead letter; empty: it must not be dead-lettered."""
    accepted: bool = False
    """May (with ``dead``) or must (without) reach the lake."""
    dlq_services: frozenset[str] = frozenset()
    """The consumers of an internal topic: each dead letter must be on one of their DLQ topics."""
    message_must_contain: str = ""
    message_must_not_contain: str = ""
    indexed_truncated: str = ""
    """A prediction's event id: it must be in Elasticsearch with its ``entity`` map cut and flagged."""


@dataclass
class Hostile:
    name: str
    topic: str
    value: bytes | None
    expect: Expect
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    event_id: str = ""
    compress: bool = False
    all_partitions: bool = False
    pans: set[str] = field(default_factory=set)
    positions: list[tuple[int, int]] = field(default_factory=list)
    """(partition, offset) of each copy sent."""


def dead(*reasons: str, services: tuple[str, ...] = (), contains: str = "", not_contains: str = "") -> Expect:
    return Expect(frozenset(reasons), False, frozenset(services), contains, not_contains)


def either(*reasons: str) -> Expect:
    return Expect(frozenset(reasons), True)


ACCEPTED = Expect(accepted=True)


def upstream_corpus(prefix: str, topic: str, rng: random.Random) -> list[Hostile]:
    """The upstream records; event ids start with ``prefix``."""
    items: list[Hostile] = []

    def tx(name: str, **fields: object) -> tuple[str, dict[str, object]]:
        event_id = f"{prefix}-{name}"
        card = Card(f"{prefix}-card-{name}", f"{prefix}-cust-{name}", luhn_pan(rng))
        body = transaction(event_id, card, rng)
        body.update(fields)
        return event_id, body

    def add(name: str, value: bytes | None, expect: Expect, event_id: str = "", **kw: object) -> None:
        items.append(Hostile(name, topic, value, expect, event_id=event_id, **kw))  # type: ignore[arg-type]

    eid, body = tx("oversized", blob="x" * (2 * MIB))
    add("oversized 2 MiB (gzip batch)", orjson.dumps(body), dead("PAYLOAD_TOO_LARGE"), eid, compress=True)
    add(
        "10 MiB record in a gzip batch",
        b'{"transaction_id": "' + prefix.encode() + b'-bomb", "pad": "' + b"0" * (10 * MIB) + b'"}',
        dead("PAYLOAD_TOO_LARGE"),
        f"{prefix}-bomb",
        compress=True,
    )
    add("gzip bomb as the payload (64 MiB of zeros)", gzip.compress(b"0" * (64 * MIB)), dead("MALFORMED_PAYLOAD"))
    eid, body = tx("deep")
    deep = orjson.dumps(body)[:-1] + b', "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    add("deep nesting (100,000 levels)", deep, dead("MALFORMED_PAYLOAD"), eid)
    eid, body = tx("utf8", merchant_id="MERCHANT_PLACEHOLDER")
    raw = orjson.dumps(body).replace(b"MERCHANT_PLACEHOLDER", b"m-\xff\xfe-bad")
    add("invalid UTF-8", raw, dead("MALFORMED_PAYLOAD", contains="utf-8"), eid)
    for literal in ("NaN", "Infinity", "-Infinity"):
        eid, body = tx(f"lit{literal.strip('-')}{len(literal)}", amount=424242.5)
        value = orjson.dumps(body).replace(b"424242.5", literal.encode())
        add(f"amount {literal}", value, dead("MALFORMED_PAYLOAD", "OUT_OF_RANGE", "INVALID_VALUE"), eid)
    eid, body = tx("e400", amount=424242.5)
    add(
        "amount 1e400",
        orjson.dumps(body).replace(b"424242.5", b"1e400"),
        dead("OUT_OF_RANGE", "INVALID_VALUE", contains="amount"),
        eid,
    )
    eid, body = tx("hugemap", **{f"k{i}": i for i in range(100_000)})
    add(
        "huge map (100,000 undeclared fields)",
        orjson.dumps(body),
        either("TOO_MANY_FIELDS", "UNDECLARED_FIELD", "PAYLOAD_TOO_LARGE"),
        eid,
        compress=True,
    )
    eid, body = tx("null", amount=None)
    add("required field null", orjson.dumps(body), dead("MISSING_FIELD", not_contains="NoneType"), eid)
    eid, body = tx("dupkey", amount=424242.5)
    dup = orjson.dumps(body)[:-1] + b', "amount": "ten"}'
    add("duplicate keys (last one a string)", dup, either("TYPE_MISMATCH", "MALFORMED_PAYLOAD"), eid)
    eid, body = tx("wrongtype", amount="12.50")
    add("amount as a string", orjson.dumps(body), dead("TYPE_MISMATCH"), eid)
    eid, body = tx("wrongtype2", card_id=12345)
    add("card_id as a number", orjson.dumps(body), dead("TYPE_MISMATCH"), eid)
    eid, body = tx("panheader")
    pan = luhn_pan(rng, "4")
    add(
        "PAN in a header (valid record)",
        orjson.dumps(body),
        ACCEPTED,
        eid,
        headers=[("x-card-number", pan.encode())],
        pans={pan, str(body["card_number"])},
    )
    pan2 = luhn_pan(rng, "5")
    add(
        "PAN in a header (invalid record)",
        b"{not json " + pan2.encode(),
        dead("MALFORMED_PAYLOAD"),
        headers=[("x-card-number", pan2.encode())],
        pans={pan2},
    )
    pan3 = luhn_pan(rng, "4")
    eid, body = tx("panfield", note=f"customer said card {pan3}")
    add(
        "PAN in an undeclared field",
        orjson.dumps(body),
        either("UNDECLARED_FIELD"),
        eid,
        pans={pan3, str(body["card_number"])},
    )
    eid, body = tx("century", timestamp="2126-01-01T00:00:00.000Z")
    add("event time a century ahead", orjson.dumps(body), dead("INVALID_EVENT_TIME"), eid)
    eid, body = tx("epochs", timestamp=1_700_000_000)
    add("epoch seconds in a millisecond field", orjson.dumps(body), dead("INVALID_EVENT_TIME"), eid)
    add("a JSON array", b"[1, 2, 3]", dead("MALFORMED_PAYLOAD"))
    add("an empty value", b"", dead("MALFORMED_PAYLOAD"))
    add("a null value (tombstone)", None, dead("MALFORMED_PAYLOAD"))
    return items


def _headers(message_type: type[Message], event_id: str) -> list[tuple[str, bytes]]:
    return cloudevent_headers(event_type=message_type.DESCRIPTOR.full_name, source="hostile", event_id=event_id)


def internal_corpus(prefix: str) -> list[Hostile]:
    """Undecodable or unindexable events on the topics the services consume, on every partition."""
    garbage = b"\xff\xff\xff\xff\x0f garbage"
    items = []
    for topic, message_type, services in (
        ("aimesh.ingest.records.v1", ingest_events.CanonicalRecord, ("feature",)),
        ("aimesh.registry.models.v1", training_events.ModelEvent, ("inference", "monitor")),
        ("aimesh.inference.predictions.v1", inference_events.Prediction, ("monitor",)),
        ("aimesh.monitor.logs.v1", monitor_events.LogRecord, ("monitor",)),
        ("aimesh.monitor.alerts.v1", monitor_events.Alert, ("training",)),
    ):
        items.append(
            Hostile(
                f"undecodable {message_type.DESCRIPTOR.name} on {topic}",
                topic,
                garbage,
                dead("DECODE_ERROR", "MALFORMED_PAYLOAD", services=services),
                headers=_headers(message_type, f"{prefix}-garbage-{topic}"),
                all_partitions=True,
            )
        )
    wide = inference_events.Prediction(
        request_id=f"{prefix}-wide",
        event_id=f"{prefix}-wide",
        model_name="fraud",
        model_version=1,
        entity_ids={f"e{i}": str(i) for i in range(10_000)},
    )
    items.append(
        Hostile(
            "prediction with 10,000 entity ids",
            "aimesh.inference.predictions.v1",
            wide.SerializeToString(),
            Expect(indexed_truncated=f"{prefix}-wide"),  # monitor bounds maps (MONITOR_MAX_MAP_ENTRIES)
            headers=_headers(inference_events.Prediction, f"{prefix}-wide"),
        )
    )
    huge = inference_events.Prediction(
        request_id="r" * (3 * MIB), event_id=f"{prefix}-huge", model_name="fraud", model_version=1
    )
    items.append(
        Hostile(
            "prediction with a 3 MiB request id (gzip batch)",
            "aimesh.inference.predictions.v1",
            huge.SerializeToString(),
            dead("DOCUMENT_TOO_LARGE", "DOCUMENT_REJECTED", "TOO_LONG", services=("monitor",)),
            headers=_headers(inference_events.Prediction, f"{prefix}-huge"),
            compress=True,
        )
    )
    return items


@dataclass(frozen=True)
class DeadLetterSeen:
    topic: str
    reason: str
    message: str
    field: str
    size: int
    upstream: tuple[str, int, int]


def decode_dead_letter(record: KafkaRecord) -> DeadLetterSeen | None:
    """A dead letter of any DLQ topic, decoded by its ``ce_type`` (the common or the older ingest contract)."""
    ce_type = record.header("ce_type") or ingest_events.DeadLetter.DESCRIPTOR.full_name
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(ce_type)
        letter = message_factory.GetMessageClass(descriptor).FromString(record.value)
    except Exception:
        return None
    fields = letter.DESCRIPTOR.fields_by_name
    if "reason_code" not in fields or "upstream" not in fields:
        return None
    enum = fields["reason_code"].enum_type
    reason_value = enum.values_by_number.get(letter.reason_code)
    reason = reason_value.name.removeprefix("REASON_CODE_") if reason_value else str(letter.reason_code)
    up = letter.upstream
    return DeadLetterSeen(
        record.topic,
        reason,
        letter.message,
        getattr(letter, "field", ""),
        len(record.value),
        (up.topic, up.partition, up.offset),
    )


def service_methods() -> list[tuple[str, pb_descriptor.MethodDescriptor]]:
    """(service name in the stack, method) for every method of the five gRPC APIs."""
    out = []
    for name, module in (
        ("ingest", ingest_pb2),
        ("feature", feature_pb2),
        ("training", training_pb2),
        ("inference", inference_pb2),
        ("monitor", monitor_pb2),
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            out.extend((name, method) for method in service.methods)
    return out


def call(
    channel: grpc.Channel,
    method: pb_descriptor.MethodDescriptor,
    payload: bytes,
    metadata: tuple[tuple[str, str], ...] | None,
    timeout: float = 15.0,
) -> str:
    """The status code name of calling ``method`` with raw ``payload`` (streams are read to the end)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path)(payload, timeout=timeout, metadata=metadata):
                pass
        else:
            channel.unary_unary(path)(payload, timeout=timeout, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined, no-any-return]
    return "OK"
