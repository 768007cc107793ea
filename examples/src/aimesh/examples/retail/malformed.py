"""Deliberately broken retail records, one branch per ``MalformedKind``, so the DLQ has content."""

from __future__ import annotations

import random
from typing import Any

import orjson

from aimesh.examples.retail.model import MalformedKind, Stream

JsonObject = dict[str, Any]

_REQUIRED_FIELDS = {
    Stream.INTERACTIONS: ("item_id", "event_type"),
    Stream.ITEMS: ("category", "price"),
}
"""Required fields a MISSING_FIELD record lacks (never the entity key: that is MISSING_ENTITY_KEY)."""
_UNKNOWN_ENUMS = {
    Stream.INTERACTIONS: (("event_type", "wishlist"), ("event_type", "return"), ("category", "weapons")),
    Stream.ITEMS: (("category", "weapons"), ("category", "toiletries")),
}
_BAD_TIMESTAMPS = ("2024-13-45T99:61:00Z", "yesterday", "", "2024-05-01 12:00")


def corrupt(rng: random.Random, stream: Stream, record: JsonObject, kind: MalformedKind) -> bytes:
    """The payload of ``record`` broken as ``kind`` says (``record`` itself is left unchanged)."""
    broken = dict(record)
    if kind is MalformedKind.INVALID_JSON:
        text = orjson.dumps(record)
        return rng.choice((text[: rng.randrange(1, len(text) - 1)], b"{" + text, text.replace(b":", b"=", 1)))
    if kind is MalformedKind.MISSING_FIELD:
        del broken[rng.choice(_REQUIRED_FIELDS[stream])]
    elif kind is MalformedKind.WRONG_TYPE:
        field = rng.choice(("price", "item_id"))
        value = broken[field]
        broken[field] = str(value) if field == "price" else int(str(value).rsplit("-", 1)[-1])
    elif kind is MalformedKind.OUT_OF_RANGE:
        broken["price"] = rng.choice((-abs(broken["price"]), 0, 5000.01, 1e9))
    elif kind is MalformedKind.UNKNOWN_ENUM:
        field, value = rng.choice(_UNKNOWN_ENUMS[stream])
        broken[field] = value
    elif kind is MalformedKind.BAD_TIMESTAMP:
        broken["timestamp"] = rng.choice(_BAD_TIMESTAMPS)
    return orjson.dumps(broken)
