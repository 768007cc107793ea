"""CSV lines go through the same validator as JSON; their DLQ payload stays CSV with PII tokenised."""

from __future__ import annotations

import pytest

from aimesh.ingest.formats import CsvLineFormat, DecodeFailure
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.sources import SourceDefinition
from aimesh.ingest.validation import Rejection, Validator, ValidRecord

SOURCE = SourceDefinition.model_validate(
    {
        "name": "legacy_payments",
        "topic": "bank.legacy",
        "format": "csv",
        "csv_columns": ["id", "account", "pan", "amount", "flagged", "ts", "branch"],
        "entity_type": "account",
        "entity_key": "account",
        "event_id_field": "id",
        "event_time_field": "ts",
        "pii_fields": ["pan"],
        "pii_token_fields": {"pan": "pan_token"},
        "fields": [
            {"name": "id", "type": "string", "required": True},
            {"name": "account", "type": "string", "required": True},
            {"name": "pan", "type": "string", "pattern": "[0-9]{12,19}"},
            {"name": "amount", "type": "double", "required": True, "min": 0},
            {"name": "flagged", "type": "bool"},
            {"name": "ts", "type": "timestamp", "required": True},
        ],
    }
)
TOKENIZER = Tokenizer("csv-secret")


def test_a_csv_line_is_typed_validated_and_tokenised() -> None:
    line = b'p1,acc-1,4111111111111111,12.50,true,1735725600000,"Main St, 5"'
    record = Validator(SOURCE, TOKENIZER).validate(line)
    assert isinstance(record, ValidRecord)
    assert (record.event_id, record.entity_key, record.event_time_us) == ("p1", "acc-1", 1735725600000000)
    assert record.attributes == {
        "amount": 12.5,
        "flagged": True,
        "pan_token": TOKENIZER.token("4111111111111111"),
        "branch": "Main St, 5",
    }


def test_trailing_optional_cells_may_be_absent() -> None:
    record = Validator(SOURCE, TOKENIZER).validate(b"p2,acc-1,,3,,2025-01-01T00:00:00Z")
    assert isinstance(record, ValidRecord) and record.attributes["pan_token"] is None


@pytest.mark.parametrize(
    ("line", "reason", "field"),
    [
        (b"p1,acc-1,4111111111111111,abc,true,1", "TYPE_MISMATCH", "amount"),
        (b"p1,acc-1,4111111111111111,nan,true,1", "TYPE_MISMATCH", "amount"),
        (b"p1,,4111111111111111,1,true,1", "MISSING_ENTITY_KEY", "account"),
        (b"p1,acc-1,4111111111111111,1,maybe,1", "TYPE_MISMATCH", "flagged"),
        (b"p1,acc-1,4111111111111111,-1,true,1", "OUT_OF_RANGE", "amount"),
        (b"p1,acc-1,1,1,true,1,x,extra", "MALFORMED_PAYLOAD", ""),
        (b'p1,"unterminated', "MALFORMED_PAYLOAD", ""),
        (b"\xff\xfe", "MALFORMED_PAYLOAD", ""),
    ],
)
def test_bad_lines_are_rejected_with_the_reason(line: bytes, reason: str, field: str) -> None:
    rejection = Validator(SOURCE, TOKENIZER).validate(line)
    assert isinstance(rejection, Rejection) and (rejection.reason, rejection.field) == (reason, field)


def test_the_dlq_payload_of_a_csv_line_is_csv_with_the_pan_tokenised() -> None:
    rejection = Validator(SOURCE, TOKENIZER).validate(b'p1,acc-1,4111111111111111,-1,true,1,"a,b"')
    assert isinstance(rejection, Rejection) and rejection.masked_fields == ("pan",)
    assert rejection.dlq_payload == f'p1,acc-1,{TOKENIZER.token("4111111111111111")},-1,true,1,"a,b"'.encode()
    replayed = Validator(SOURCE, TOKENIZER).validate(rejection.dlq_payload, masked={"pan"})
    assert isinstance(replayed, Rejection) and replayed.reason == "OUT_OF_RANGE"
    assert replayed.dlq_payload == rejection.dlq_payload, "a token is never tokenised twice"


def test_decode_failure_never_echoes_the_payload() -> None:
    with pytest.raises(DecodeFailure) as failure:
        CsvLineFormat(SOURCE).decode(b"4111111111111111," * 9)
    assert "4111" not in failure.value.message
