"""Honest messages for bad JSON: null, invalid UTF-8, numbers out of range, duplicate keys."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.sources import load_sources
from aimesh.ingest.validation import Rejection, Validator, ValidRecord

SOURCES = {s.name: s for s in load_sources(Path(__file__).parent / "fixtures" / "sources.yaml")}
VALIDATOR = Validator(SOURCES["chargebacks"], Tokenizer("s"))
TRANSACTIONS = Validator(SOURCES["card_transactions"], Tokenizer("s"))
GOOD = b'"chargeback_id": "cb-1", "transaction_id": "tx-1", "card_id": "c-1", "reason": "fraud"'
NOW = '"2024-05-01T12:00:00Z"'


def doc(extra: str = "", timestamp: str = NOW) -> bytes:
    return ("{" + GOOD.decode() + f', "timestamp": {timestamp}' + extra + "}").encode()


def reject(payload: bytes, validator: Validator = VALIDATOR) -> Rejection:
    outcome = validator.validate(payload)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def test_the_good_document_is_valid() -> None:
    assert isinstance(VALIDATOR.validate(doc()), ValidRecord)


@pytest.mark.parametrize(
    ("payload", "reason", "field", "message"),
    [
        (doc(timestamp="null"), "INVALID_EVENT_TIME", "timestamp", "event time timestamp is null"),
        (
            b'{"chargeback_id": "cb-1", "transaction_id": null, "card_id": "c", "reason": "fraud", "timestamp": 1}',
            "MISSING_FIELD",
            "transaction_id",
            "required field transaction_id is null",
        ),
        (
            b'{"chargeback_id": "cb-1", "card_id": "c", "reason": "fraud", "timestamp": 1}',
            "MISSING_FIELD",
            "transaction_id",
            "required field transaction_id is missing",
        ),
        (doc().replace(b'"c-1"', b"null"), "MISSING_ENTITY_KEY", "card_id", "entity key card_id is null"),
        (b"null", "MALFORMED_PAYLOAD", "", "expected a JSON object, got null"),
        (b"[1, 2]", "MALFORMED_PAYLOAD", "", "expected a JSON object, got an array"),
        (b'"text"', "MALFORMED_PAYLOAD", "", "expected a JSON object, got a string"),
    ],
)
def test_null_is_called_null(payload: bytes, reason: str, field: str, message: str) -> None:
    rejection = reject(payload)
    assert (rejection.reason, rejection.field, rejection.message) == (reason, field, message)
    assert "NoneType" not in rejection.message


def test_a_null_in_a_typed_field_of_another_type_says_null() -> None:
    payload = orjson.loads(doc())
    rejection = reject(orjson.dumps(payload | {"reason": None}))
    assert rejection.message == "required field reason is null"


def test_invalid_utf8_names_the_byte() -> None:
    payload = doc().replace(b"fraud", b"fr\xffud")
    rejection = reject(payload)
    offset = payload.index(b"\xff")
    assert rejection.reason == "MALFORMED_PAYLOAD"
    assert rejection.message == f"not valid JSON: invalid UTF-8 at byte {offset} (invalid start byte, byte 0xff)"
    assert "surrogates" not in rejection.message


def test_a_truncated_utf8_sequence_names_its_byte_too() -> None:
    payload = doc().replace(b"fraud", b"fra\xc3")
    offset = payload.index(b"\xc3")
    assert f"invalid UTF-8 at byte {offset}" in reject(payload).message


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" + "0" * 400])
def test_a_number_out_of_range_names_its_field(number: str) -> None:
    payload = b'{"transaction_id": "t", "amount": ' + number.encode() + b', "card_id": "c"}'
    rejection = reject(payload, TRANSACTIONS)
    assert (rejection.reason, rejection.field) == ("OUT_OF_RANGE", "amount")
    assert rejection.message.startswith(f"amount: the number {number[:64]} is out of range")


def test_a_nested_number_out_of_range_names_the_top_level_field() -> None:
    rejection = reject(doc(', "extra": {"deep": [1, 2e999]}'))
    assert (rejection.reason, rejection.field) == ("OUT_OF_RANGE", "extra")


@pytest.mark.parametrize(
    "extra",
    [
        ', "reason": "dispute"',  # a declared field twice
        ', "x": 1, "x" : 2',  # whitespace before the colon
        ', "x": {"a": 1, "a": 2}',  # nested
        ', "x": [{"a": 1}, {"b": 1, "b": 2}]',
        ', "s": "\\":", "x": 1, "x" : 2',  # a string with a key pattern inside hides nothing
    ],
)
def test_duplicate_keys_are_refused(extra: str) -> None:
    rejection = reject(doc(extra))
    assert rejection.reason == "MALFORMED_PAYLOAD"
    assert rejection.message.startswith("duplicate key ") and "in a JSON object" in rejection.message


@pytest.mark.parametrize(
    "extra",
    [', "s": ":x"', ', "s": "a\\": b"', ', "x": {"a": 1, "b": {"a": 1}}', ', "x": [{"a": 1}, {"a": 1}]'],
)
def test_repeated_names_in_different_objects_and_key_like_strings_are_fine(extra: str) -> None:
    assert isinstance(VALIDATOR.validate(doc(extra)), ValidRecord)
