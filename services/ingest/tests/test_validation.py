"""The ingest validator: every malformed kind gets its ReasonCode, PII never survives, no input crashes it."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.sources import UndeclaredFields, load_sources
from aimesh.ingest.validation import Rejection, Validator, ValidRecord

SOURCES_FILE = Path(__file__).parent / "fixtures" / "sources.yaml"

SECRET = "unit-test-secret"
PAN = "4111111111111111"
SOURCES = {s.name: s for s in load_sources(SOURCES_FILE)}


def transaction(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "transaction_id": "tx-0000000001",
        "card_id": "card-1",
        "card_number": PAN,
        "customer_id": "cust-1",
        "merchant_id": "merch-1",
        "merchant_category": "grocery",
        "amount": 12.5,
        "currency": "EUR",
        "country": "DE",
        "device_id": "dev-1",
        "channel": "pos",
        "timestamp": "2024-05-01T12:00:00.250Z",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()


@pytest.fixture
def validator() -> Validator:
    return Validator(SOURCES["card_transactions"], Tokenizer(SECRET))


def reject(validator: Validator, payload: bytes) -> Rejection:
    outcome = validator.validate(payload)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def test_valid_transaction_is_canonicalised_with_the_pan_tokenised(validator: Validator) -> None:
    outcome = validator.validate(orjson.dumps(transaction()))

    assert isinstance(outcome, ValidRecord)
    assert outcome.event_id == "tx-0000000001" and outcome.entity_key == "card-1"
    assert outcome.event_time_us == 1714564800_250000
    expected_token = hmac.new(SECRET.encode(), PAN.encode(), hashlib.sha256).hexdigest()
    assert outcome.attributes["card_token"] == expected_token
    assert "card_number" not in outcome.attributes
    assert {"transaction_id", "card_id", "timestamp"}.isdisjoint(outcome.attributes)
    assert outcome.attributes["amount"] == 12.5 and outcome.attributes["merchant_category"] == "grocery"
    assert PAN not in repr(outcome)


def test_optional_fields_may_be_missing_and_undeclared_ones_are_dropped_by_default(validator: Validator) -> None:
    outcome = validator.validate(orjson.dumps(transaction(currency=DROP, channel=None, extra={"a": 1}, n=3)))

    assert isinstance(outcome, ValidRecord)
    assert outcome.attributes["currency"] is None and outcome.attributes["channel"] is None
    assert "extra" not in outcome.attributes and "n" not in outcome.attributes
    assert outcome.undeclared_dropped == 2


def test_undeclared_fields_pass_through_when_the_source_keeps_them() -> None:
    keeping = SOURCES["card_transactions"].model_copy(update={"undeclared_fields": UndeclaredFields.KEEP})
    outcome = Validator(keeping, Tokenizer(SECRET)).validate(orjson.dumps(transaction(extra={"a": 1}, n=3)))

    assert isinstance(outcome, ValidRecord)
    assert outcome.attributes["extra"] == '{"a":1}' and outcome.attributes["n"] == 3
    assert outcome.undeclared_dropped == 0


def test_an_undeclared_field_cannot_overwrite_the_token() -> None:
    keeping = SOURCES["card_transactions"].model_copy(update={"undeclared_fields": UndeclaredFields.KEEP})
    outcome = Validator(keeping, Tokenizer(SECRET)).validate(orjson.dumps(transaction(card_token="forged")))
    assert isinstance(outcome, ValidRecord) and outcome.attributes["card_token"] != "forged"


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b'{"transaction_id": "tx-1", ', "MALFORMED_PAYLOAD", ""),
        (b"\xff\xfe", "MALFORMED_PAYLOAD", ""),
        (b"[1, 2]", "MALFORMED_PAYLOAD", ""),
        (orjson.dumps(transaction(amount=DROP)), "MISSING_FIELD", "amount"),
        (orjson.dumps(transaction(transaction_id="")), "MISSING_FIELD", "transaction_id"),
        (orjson.dumps(transaction(card_id=DROP)), "MISSING_ENTITY_KEY", "card_id"),
        (orjson.dumps(transaction(card_id="")), "MISSING_ENTITY_KEY", "card_id"),
        (orjson.dumps(transaction(amount="12.50")), "TYPE_MISMATCH", "amount"),
        (orjson.dumps(transaction(amount=True)), "TYPE_MISMATCH", "amount"),
        (orjson.dumps(transaction(card_number=int(PAN))), "TYPE_MISMATCH", "card_number"),
        (orjson.dumps(transaction(merchant_id=17)), "TYPE_MISMATCH", "merchant_id"),
        (orjson.dumps(transaction(amount=0)), "OUT_OF_RANGE", "amount"),
        (orjson.dumps(transaction(amount=-3.0)), "OUT_OF_RANGE", "amount"),
        (orjson.dumps(transaction(amount=50_000.01)), "OUT_OF_RANGE", "amount"),
        (orjson.dumps(transaction(currency="XBT")), "NOT_ALLOWED_VALUE", "currency"),
        (orjson.dumps(transaction(merchant_category="casino")), "NOT_ALLOWED_VALUE", "merchant_category"),
        (orjson.dumps(transaction(card_number="4111-1111")), "NOT_ALLOWED_VALUE", "card_number"),
        (orjson.dumps(transaction(country="deu")), "NOT_ALLOWED_VALUE", "country"),
        (orjson.dumps(transaction(device_id="d" * 129)), "TOO_LONG", "device_id"),
        (orjson.dumps(transaction(timestamp="2024-13-45T99:61:00Z")), "INVALID_EVENT_TIME", "timestamp"),
        (orjson.dumps(transaction(timestamp="2024-05-01 12:00")), "INVALID_EVENT_TIME", "timestamp"),
        (orjson.dumps(transaction(timestamp="")), "INVALID_EVENT_TIME", "timestamp"),
        (orjson.dumps(transaction(timestamp=DROP)), "INVALID_EVENT_TIME", "timestamp"),
        (orjson.dumps(transaction(timestamp=[1])), "INVALID_EVENT_TIME", "timestamp"),
    ],
)
def test_each_defect_gets_its_reason_code(validator: Validator, payload: bytes, reason: str, field: str) -> None:
    rejection = reject(validator, payload)
    assert (rejection.reason, rejection.field) == (reason, field)
    assert rejection.message
    assert PAN not in rejection.message


def test_epoch_milliseconds_are_an_event_time(validator: Validator) -> None:
    outcome = validator.validate(orjson.dumps(transaction(timestamp=1714564800250)))
    assert isinstance(outcome, ValidRecord) and outcome.event_time_us == 1714564800_250000


def test_oversized_payloads_are_rejected_before_parsing() -> None:
    small = Validator(SOURCES["card_transactions"], Tokenizer(SECRET), max_payload_bytes=10)
    assert reject(small, orjson.dumps(transaction())).reason == "PAYLOAD_TOO_LARGE"


def test_a_rejected_json_object_has_its_pii_masked_for_the_dlq(validator: Validator) -> None:
    rejection = reject(validator, orjson.dumps(transaction(currency="XBT")))

    assert rejection.event_id == "tx-0000000001"
    assert rejection.masked_fields == ("card_number",)
    assert PAN.encode() not in rejection.dlq_payload
    masked = orjson.loads(rejection.dlq_payload)
    assert masked["card_number"] == Tokenizer(SECRET).token(PAN)
    assert masked["currency"] == "XBT"


def test_a_wrongly_typed_pan_is_masked_too(validator: Validator) -> None:
    rejection = reject(validator, orjson.dumps(transaction(card_number=int(PAN))))
    assert PAN.encode() not in rejection.dlq_payload and rejection.masked_fields == ("card_number",)


def test_unparseable_payloads_are_kept_but_card_number_like_runs_are_tokenised(validator: Validator) -> None:
    payload = orjson.dumps(transaction())[:-5]
    rejection = reject(validator, payload)
    token = Tokenizer(SECRET).token(PAN).encode()
    assert PAN.encode() not in rejection.dlq_payload
    assert rejection.dlq_payload == payload.replace(PAN.encode(), token)
    assert "1 run(s) of 12-19 digits or PANs, possibly PII, replaced by their tokens" in rejection.message


def test_unparseable_payloads_without_card_numbers_are_kept_byte_for_byte(validator: Validator) -> None:
    payload = b'{"amount": 12, "id": "12345678901", "x": 12345678901234567890'
    rejection = reject(validator, payload)
    assert rejection.dlq_payload == payload and rejection.masked_fields == ()


def test_chargebacks_validate_with_their_own_definition() -> None:
    chargebacks = Validator(SOURCES["chargebacks"], Tokenizer(SECRET))
    record = {
        "chargeback_id": "cb-1",
        "transaction_id": "tx-1",
        "card_id": "card-1",
        "reason": "fraud",
        "timestamp": "2024-05-03T00:00:00+02:00",
    }
    outcome = chargebacks.validate(orjson.dumps(record))
    assert isinstance(outcome, ValidRecord)
    assert outcome.attributes == {"transaction_id": "tx-1", "reason": "fraud"}
    assert outcome.event_time_us == 1714687200_000000
    assert reject(chargebacks, orjson.dumps(record | {"reason": "bored"})).reason == "NOT_ALLOWED_VALUE"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_accepted_or_rejected_never_raised(payload: bytes) -> None:
    validator = Validator(SOURCES["card_transactions"], Tokenizer(SECRET))
    assert isinstance(validator.validate(payload), ValidRecord | Rejection)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(transaction())) | st.text(max_size=8), JSON_VALUES, max_size=14))
def test_arbitrary_json_objects_never_raise_and_never_leak_a_pan(document: dict[str, object]) -> None:
    validator = Validator(SOURCES["card_transactions"], Tokenizer(SECRET))
    document = {**transaction(), **document} if len(document) % 2 else document
    try:
        payload = orjson.dumps(document)
    except (TypeError, orjson.JSONEncodeError):
        return
    outcome = validator.validate(payload)
    assert isinstance(outcome, ValidRecord | Rejection)
    pan = document.get("card_number")
    if isinstance(outcome, ValidRecord):
        assert "card_number" not in outcome.attributes
    elif isinstance(pan, str) and len(pan) >= 12:
        assert pan not in outcome.message
