"""Deliberately broken upstream records, one function per ``MalformedKind``, so the DLQ has content."""

from __future__ import annotations

import random
from typing import Any

import orjson

from aimesh.examples.banking.model import MalformedKind, Stream

JsonObject = dict[str, Any]

_REQUIRED_FIELDS = {
    Stream.TRANSACTIONS: ("customer_id", "merchant_id", "amount", "device_id"),
    Stream.CHARGEBACKS: ("transaction_id", "reason"),
}
_UNKNOWN_ENUMS = {
    Stream.TRANSACTIONS: (("currency", "XBT"), ("channel", "carrier_pigeon"), ("merchant_category", "casino")),
    Stream.CHARGEBACKS: (("reason", "changed_my_mind"),),
}
_BAD_TIMESTAMPS = ("2024-13-45T99:61:00Z", "yesterday", "", "2024-05-01 12:00")


def kinds_for(stream: Stream) -> tuple[MalformedKind, ...]:
    """The kinds that apply to ``stream`` (chargebacks have no numeric field, so no out-of-range)."""
    if stream is Stream.CHARGEBACKS:
        return tuple(k for k in MalformedKind if k is not MalformedKind.OUT_OF_RANGE)
    return tuple(MalformedKind)


def corrupt(rng: random.Random, stream: Stream, record: JsonObject, kind: MalformedKind) -> bytes:
    """The payload of ``record`` broken as ``kind`` says (``record`` itself is left unchanged)."""
    broken = dict(record)
    if kind is MalformedKind.INVALID_JSON:
        text = orjson.dumps(record)
        return rng.choice((text[: rng.randrange(1, len(text) - 1)], b"{" + text, text.replace(b":", b"=", 1)))
    if kind is MalformedKind.MISSING_FIELD:
        del broken[rng.choice(_REQUIRED_FIELDS[stream])]
    elif kind is MalformedKind.WRONG_TYPE:
        if stream is Stream.TRANSACTIONS:
            field = rng.choice(("amount", "card_number", "merchant_id"))
            value = broken[field]
            broken[field] = str(value) if field == "amount" else int(str(value).removeprefix("merch-"))
        else:
            broken["transaction_id"] = rng.randrange(10**9)
    elif kind is MalformedKind.OUT_OF_RANGE:
        broken["amount"] = rng.choice((-abs(broken["amount"]), 0, 50_000.01, 1e9))
    elif kind is MalformedKind.UNKNOWN_ENUM:
        field, value = rng.choice(_UNKNOWN_ENUMS[stream])
        broken[field] = value
    elif kind is MalformedKind.BAD_TIMESTAMP:
        broken["timestamp"] = rng.choice(_BAD_TIMESTAMPS)
    return orjson.dumps(broken)
