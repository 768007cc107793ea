"""What the banking generator produces: upstream records plus side-channel facts the payload never carries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stream(StrEnum):
    """The two upstream streams of the bank (the topic names are the publisher's choice)."""

    TRANSACTIONS = "transactions"
    CHARGEBACKS = "chargebacks"


class MalformedKind(StrEnum):
    """How a deliberately malformed record is broken."""

    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_ENUM = "unknown_enum"
    BAD_TIMESTAMP = "bad_timestamp"


EXPECTED_REASON: dict[MalformedKind, str] = {
    MalformedKind.INVALID_JSON: "MALFORMED_PAYLOAD",
    MalformedKind.MISSING_FIELD: "MISSING_FIELD",
    MalformedKind.WRONG_TYPE: "TYPE_MISMATCH",
    MalformedKind.OUT_OF_RANGE: "OUT_OF_RANGE",
    MalformedKind.UNKNOWN_ENUM: "NOT_ALLOWED_VALUE",
    MalformedKind.BAD_TIMESTAMP: "INVALID_EVENT_TIME",
}
"""The ``aimesh.api.common.v1.ReasonCode`` name (without prefix) a validating ingest must answer with."""


class FraudPattern(StrEnum):
    """Why a transaction is fraudulent."""

    CARD_TESTING = "card_testing"
    ACCOUNT_TAKEOVER = "account_takeover"
    RISKY_MERCHANT = "risky_merchant"
    OPPORTUNISTIC = "opportunistic"


@dataclass(frozen=True, slots=True)
class GeneratedEvent:
    """One upstream record as the bank would publish it, and what the generator knows about it.

    ``value`` is the exact payload (UTF-8 JSON, or broken bytes when ``malformed`` is set); every other
    field is a side channel for the caller and tests, never part of the payload.
    """

    stream: Stream
    key: str
    value: bytes
    event_id: str
    time_us: int
    malformed: MalformedKind | None = None
    fraud: FraudPattern | None = None
    card_number: str = ""

    @property
    def is_fraud(self) -> bool:
        return self.fraud is not None
