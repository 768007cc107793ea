"""Dead-letter records keep the original bytes, headers, position and a typed reason."""

from __future__ import annotations

from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.core.deadletter import build_dead_letter, reason_code_value


def test_reason_codes_map_to_the_enum_and_unknown_ones_to_unspecified() -> None:
    assert reason_code_value("MISSING_FIELD") == ingest_pb2.REASON_CODE_MISSING_FIELD
    assert reason_code_value("REASON_CODE_MISSING_FIELD") == ingest_pb2.REASON_CODE_MISSING_FIELD
    assert reason_code_value("NO_SUCH_REASON") == ingest_pb2.REASON_CODE_UNSPECIFIED


def test_dead_letter_keeps_everything_needed_to_replay() -> None:
    dl = build_dead_letter(
        payload=b'{"amount": "x"}',
        headers=(("ce_id", b"e1"), ("raw", b"\xff")),
        source="cards",
        reason_code="TYPE_MISMATCH",
        message="amount: expected number",
        event_id="e1",
        field="amount",
        position=("bank.tx", 2, 41),
    )
    assert dl.original_payload == b'{"amount": "x"}'
    assert [(h.key, h.value) for h in dl.original_headers] == [("ce_id", b"e1"), ("raw", b"\xff")]
    assert (dl.upstream.topic, dl.upstream.partition, dl.upstream.offset) == ("bank.tx", 2, 41)
    assert dl.reason_code == ingest_pb2.REASON_CODE_TYPE_MISMATCH
    assert dl.field == "amount" and dl.time.seconds > 0
