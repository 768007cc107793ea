"""Card transactions as the feature service reads them: from a CanonicalRecord (Kafka) or a lake row.

Only the ``card_transactions`` source feeds features; other sources (chargebacks ...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimesh.api.common.v1 import common_pb2
from aimesh.api.ingest.v1 import events_pb2
from aimesh.core.events import Event, PoisonEvent
from aimesh.feature.aggregation import HistoryEvent
from aimesh.feature.definitions import CARD_TRANSACTIONS

STRING_ATTRIBUTES = ("customer_id", "merchant_id", "country", "device_id")


@dataclass(frozen=True, slots=True)
class Transaction:
    """One card payment: the card's and the customer's history both get it."""

    event_id: str
    card_id: str
    customer_id: str
    ts_us: int
    amount: float
    merchant_id: str
    country: str
    device_id: str

    def history_event(self) -> HistoryEvent:
        return HistoryEvent(self.event_id, self.ts_us, self.amount, self.merchant_id)


def _string(record: events_pb2.CanonicalRecord, name: str) -> str:
    value = record.attributes.get(name)
    if value is None or value.WhichOneof("kind") != "string_value" or not value.string_value:
        raise PoisonEvent("MISSING_FIELD", f"card transaction {record.event_id!r}: attribute {name} (string) missing")
    return value.string_value


def _amount(record: events_pb2.CanonicalRecord) -> float:
    value = record.attributes.get("amount", common_pb2.Value())
    kind = value.WhichOneof("kind")
    if kind == "double_value":
        return value.double_value
    if kind == "int64_value":
        return float(value.int64_value)
    raise PoisonEvent("MISSING_FIELD", f"card transaction {record.event_id!r}: attribute amount (number) missing")


def transaction_from_record(record: events_pb2.CanonicalRecord) -> Transaction | None:
    """The transaction in ``record``; None for records of other sources.

    Raises PoisonEvent(``MISSING_FIELD``) when an id, the event time or an attribute features need is missing.
    """
    if record.source != CARD_TRANSACTIONS:
        return None
    if not record.event_id or not record.entity_key:
        raise PoisonEvent("MISSING_FIELD", "card transaction without event_id or entity_key")
    if not record.HasField("event_time"):
        raise PoisonEvent("MISSING_FIELD", f"card transaction {record.event_id!r}: event_time missing")
    customer_id, merchant_id, country, device_id = (_string(record, name) for name in STRING_ATTRIBUTES)
    return Transaction(
        event_id=record.event_id,
        card_id=record.entity_key,
        customer_id=customer_id,
        ts_us=record.event_time.ToMicroseconds(),
        amount=_amount(record),
        merchant_id=merchant_id,
        country=country,
        device_id=device_id,
    )


def transaction_from_event(event: Event) -> Transaction | None:
    """Decode a consumed ``aimesh.ingest.records.v1`` event; see ``transaction_from_record``.

    Raises PoisonEvent(``MALFORMED_PAYLOAD``) when the payload is not a CanonicalRecord.
    """
    return transaction_from_record(event.parse(events_pb2.CanonicalRecord))
