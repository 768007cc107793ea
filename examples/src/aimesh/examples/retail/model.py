"""What the retail generator produces: upstream records plus side-channel facts the payload never carries.

The malformed kinds and the ``ReasonCode`` ingest must answer with are the banking pack's
(``aimesh.examples.banking.model``): every pack breaks records the same ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aimesh.examples.banking.model import EXPECTED_REASON, MalformedKind

__all__ = ["EXPECTED_REASON", "EventType", "GeneratedEvent", "MalformedKind", "Stream"]


class Stream(StrEnum):
    """The retailer's two upstream streams (the topic names are the publisher's choice)."""

    INTERACTIONS = "interactions"
    ITEMS = "items"


class EventType(StrEnum):
    """What a user did with an item."""

    VIEW = "view"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"


@dataclass(frozen=True, slots=True)
class GeneratedEvent:
    """One upstream record as the retailer would publish it, and what the generator knows about it.

    ``value`` is the exact payload (UTF-8 JSON, or broken bytes when ``malformed`` is set); every other
    field is a side channel for the caller and tests, never part of the payload. ``user_id`` and
    ``item_id`` are empty for records that carry none (a catalogue record has no user).
    """

    stream: Stream
    key: str
    value: bytes
    event_id: str
    time_us: int
    malformed: MalformedKind | None = None
    user_id: str = ""
    item_id: str = ""
    event_type: EventType | None = None
