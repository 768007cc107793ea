"""Dead letters: typed reasons only, the writer named, and every entry fits one Kafka record."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from aimesh.api.common.v1 import deadletter_pb2
from aimesh.core.deadletter import (
    DEFAULT_MAX_RECORD_BYTES,
    HEADROOM,
    DeadLetterBounds,
    DeadLetterPublisher,
    PayloadStore,
    build_dead_letter,
    reason_code_names,
    reason_code_value,
)
from aimesh.core.events import Event
from aimesh.core.pan import PanMasker, Tokenizer
from aimesh.core.topics import DLQ_TOPICS, INGEST_DLQ, MONITOR_DLQ, dlq_topic

REPO = Path(__file__).resolve().parents[3]


def test_reason_codes_map_to_the_enum_and_unknown_or_unspecified_ones_raise() -> None:
    assert reason_code_value("MISSING_FIELD") == deadletter_pb2.REASON_CODE_MISSING_FIELD
    assert reason_code_value("REASON_CODE_TOO_MANY_FIELDS") == deadletter_pb2.REASON_CODE_TOO_MANY_FIELDS
    with pytest.raises(ValueError, match="RETRIES_EXHAUSTED"):
        reason_code_value("NO_SUCH_REASON")
    with pytest.raises(ValueError):
        reason_code_value("UNSPECIFIED")


def _string_codes(tree: ast.AST) -> set[str]:
    """First string arguments of ``PoisonEvent(...)``, ``Rejection(...)``, ``InvalidField(...)`` and
    ``.send(event, "CODE", ...)`` calls: the reason codes the code base dead-letters with."""
    codes: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        args = node.args
        if name in {"PoisonEvent", "Rejection", "InvalidField", "_unparsed"}:
            candidate = args[0] if args else None
        elif name == "send" and len(args) >= 2:
            candidate = args[1]
        else:
            continue
        if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str) and candidate.value.isupper():
            codes.add(candidate.value)
    return codes


def test_every_reason_code_the_services_use_is_in_the_enum() -> None:
    sources = [*REPO.glob("services/*/src/**/*.py"), *REPO.glob("libs/core/src/**/*.py")]
    used: set[str] = set()
    for path in sources:
        used |= _string_codes(ast.parse(path.read_text()))
    assert {"MISSING_FIELD", "DECODE_ERROR", "DOCUMENT_TOO_LARGE"} <= used, "the scan must find the codes"
    assert used - set(reason_code_names()) == set()


def test_each_service_owns_its_dlq_topic() -> None:
    assert INGEST_DLQ == "aimesh.ingest.dlq.v1" and MONITOR_DLQ == dlq_topic("monitor") == "aimesh.monitor.dlq.v1"
    assert len(set(DLQ_TOPICS)) == 5


def test_dead_letter_keeps_everything_needed_to_replay() -> None:
    dl = build_dead_letter(
        payload=b'{"amount": "x"}',
        headers=(("ce_id", b"e1"), ("raw", b"\xff")),
        service="ingest",
        source="cards",
        reason_code="TYPE_MISMATCH",
        message="amount: expected number",
        event_id="e1",
        field="amount",
        position=("bank.tx", 2, 41),
    )
    assert dl.original_payload == b'{"amount": "x"}' and dl.payload_size == 15 and not dl.payload_ref
    assert [(h.key, h.value) for h in dl.original_headers] == [("ce_id", b"e1"), ("raw", b"\xff")]
    assert (dl.upstream.topic, dl.upstream.partition, dl.upstream.offset) == ("bank.tx", 2, 41)
    assert dl.reason_code == deadletter_pb2.REASON_CODE_TYPE_MISMATCH
    assert dl.service == "ingest" and dl.field == "amount" and dl.time.seconds > 0


def _letter(payload: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> deadletter_pb2.DeadLetter:
    return build_dead_letter(
        payload=payload, headers=headers, service="monitor", reason_code="DOCUMENT_TOO_LARGE", message="x" * 10_000
    )


async def test_a_small_dead_letter_is_left_inline(tmp_path: Path) -> None:
    bounds = DeadLetterBounds(PayloadStore(tmp_path))
    letter = await bounds.fit(_letter(b"small"))
    assert letter.original_payload == b"small" and not letter.payload_ref
    assert len(letter.message) <= 4096
    assert not any(tmp_path.iterdir())


async def test_an_oversized_payload_is_stored_aside_and_referenced(tmp_path: Path) -> None:
    payload = b"\x00\x01" * 1_000_000  # 2 MB, as the dead letter of a 1 MB-request-id prediction was
    bounds = DeadLetterBounds(PayloadStore(tmp_path))
    letter = await bounds.fit(_letter(payload, (("ce_id", b"p1"),)))
    assert letter.ByteSize() <= DEFAULT_MAX_RECORD_BYTES - HEADROOM
    assert not letter.original_payload and letter.payload_size == len(payload)
    assert letter.payload_preview == payload[:1024]
    digest = hashlib.sha256(payload).hexdigest()
    assert letter.payload_ref.startswith("file://") and letter.payload_ref.endswith(f"/sha256/{digest[:2]}/{digest}")
    assert PayloadStore.read(letter.payload_ref) == payload
    assert [(h.key, h.value) for h in letter.original_headers] == [("ce_id", b"p1")]
    again = await bounds.fit(_letter(payload))
    assert again.payload_ref == letter.payload_ref, "content-addressed: the same bytes, the same file"
    assert [p.name for p in (tmp_path / "sha256" / digest[:2]).iterdir()] == [digest], "no temporary file left"


async def test_huge_headers_are_cut_then_dropped_so_the_entry_always_fits(tmp_path: Path) -> None:
    bounds = DeadLetterBounds(PayloadStore(tmp_path), max_record_bytes=64 * 1024)
    cut = await bounds.fit(_letter(b"p", (("big", b"h" * 200_000), ("ce_id", b"x"))))
    assert [(h.key, len(h.value)) for h in cut.original_headers] == [("big", 1024), ("ce_id", 1)]
    assert "header values cut" in cut.message and cut.ByteSize() <= bounds.limit
    many = await bounds.fit(_letter(b"p", tuple((f"h{i}", b"v" * 900) for i in range(200))))
    assert not many.original_headers and "200 headers dropped" in many.message and many.ByteSize() <= bounds.limit


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, deadletter_pb2.DeadLetter, object, object]] = []

    async def publish(self, topic: str, message: deadletter_pb2.DeadLetter, *, key: object, event_id: object) -> None:
        self.sent.append((topic, message, key, event_id))


async def test_the_publisher_sends_to_its_services_topic_fitted(tmp_path: Path) -> None:
    producer = _Producer()
    publisher = DeadLetterPublisher(producer, "feature", DeadLetterBounds(PayloadStore(tmp_path)))  # type: ignore[arg-type]
    event = Event("t", 1, 7, b"k", b"z" * 2_000_000, (("ce_id", b"e7"),), 0)
    await publisher.send(event, "DECODE_ERROR", "not a CanonicalRecord")
    ((topic, letter, key, event_id),) = producer.sent
    assert (topic, key, event_id) == ("aimesh.feature.dlq.v1", "feature", "dlq:t/1/7")
    assert letter.service == "feature" and letter.event_id == "e7" and letter.payload_ref
    assert letter.reason_code == deadletter_pb2.REASON_CODE_DECODE_ERROR


async def test_a_publisher_with_a_masker_keeps_no_raw_pan_in_payload_headers_or_message(tmp_path: Path) -> None:
    pan = "4111111111111111"
    masker = PanMasker(Tokenizer("dlq-test-secret"))
    producer = _Producer()
    publisher = DeadLetterPublisher(
        producer,  # type: ignore[arg-type]
        "ingest",
        DeadLetterBounds(PayloadStore(tmp_path)),
        masker=masker,
    )
    event = Event(
        "t", 0, 3, b"k", f'{{"note": "card {pan}", "ts": 1714000000000}}'.encode(), (("x-card", pan.encode()),), 0
    )
    await publisher.send(event, "RETRIES_EXHAUSTED", f"failed on {pan}")
    ((_, letter, _, _),) = producer.sent
    kept = letter.original_payload + b"".join(h.value for h in letter.original_headers) + letter.message.encode()
    assert pan.encode() not in kept
    assert Tokenizer("dlq-test-secret").token(pan).encode() in letter.original_payload
    assert b"1714000000000" in letter.original_payload, "only Luhn-valid runs are tokenised"
    plain = _Producer()
    await DeadLetterPublisher(plain, "feature", DeadLetterBounds(PayloadStore(tmp_path))).send(
        event, "DECODE_ERROR", "x"
    )  # type: ignore[arg-type]
    assert pan.encode() in plain.sent[0][1].original_payload, "without a masker the copy is the original"
