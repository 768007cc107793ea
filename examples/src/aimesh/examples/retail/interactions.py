"""An existing interaction log, replayed as ``retail.interactions`` events instead of generated sessions.

The layout is the common tab-separated ``user item rating timestamp`` one (MovieLens ``u.data``):
one interaction per line, four tab-separated columns, ``timestamp`` in integer epoch seconds (UTC).
Blank lines are skipped; every other line that does not fit is a ``BadLine`` (its 1-based number and
why), never an exception, so a caller can report them all and publish the rest.

Each good line becomes one interaction record of the pack's ``retail_interactions`` source:
``interaction_id`` = ``log-`` + the first 24 hex digits of SHA-256 over ``user``, ``item`` and
``timestamp`` (so replaying a file twice publishes the same ids, and ingest drops the second copy as
duplicates), ``user_id``, ``item_id``, ``event_type`` (``purchase`` unless told otherwise), ``rating``
(a number, kept as a field) and ``timestamp`` (RFC 3339, ms). The log carries no category, price or
session: those fields are left out (the source declares them optional). ``shift_us`` moves every time
by the same amount (``--shift-end``: the newest line lands at a chosen time, gaps preserved).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from aimesh.examples.banking.generator import rfc3339
from aimesh.examples.retail.model import EventType, GeneratedEvent, Stream

MAX_ID_LENGTH = 64
"""The longest user or item id the ``retail_interactions`` source accepts (its ``max_length``)."""
MAX_EPOCH_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z: the latest time an RFC 3339 timestamp can name."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One good line of the log."""

    line: int
    user_id: str
    item_id: str
    rating: float
    timestamp_s: int


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not ``user<TAB>item<TAB>rating<TAB>timestamp``; ``reason`` says what is wrong."""

    line: int
    reason: str
    text: str


def _id(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if any(ch.isspace() for ch in value):
        raise ValueError(f"{what} {value!r} contains whitespace")
    return value


def parse_line(text: str, line: int) -> Interaction | BadLine | None:
    """The interaction of one line (``None`` for a blank line, ``BadLine`` when it does not fit)."""
    stripped = text.rstrip("\r\n")
    if not stripped.strip():
        return None
    if "\ufffd" in stripped:
        return BadLine(line, "not valid UTF-8 (the file is read as UTF-8)", text)
    columns = stripped.split("\t")
    if len(columns) != 4:
        return BadLine(line, f"expected 4 tab-separated columns (user item rating timestamp), got {len(columns)}", text)
    user, item, rating_text, time_text = columns
    try:
        user_id = _id(user, "user")
        item_id = _id(item, "item")
        try:
            rating = float(rating_text)
        except ValueError:
            raise ValueError(f"rating {rating_text!r} is not a number") from None
        if not math.isfinite(rating):
            raise ValueError(f"rating {rating_text!r} is not a finite number")
        if not time_text.isascii() or not time_text.isdigit():
            raise ValueError(f"timestamp {time_text!r} is not a whole number of epoch seconds")
        seconds = int(time_text)
        if seconds > MAX_EPOCH_SECONDS:
            raise ValueError(f"timestamp {time_text} is after the year 9999")
    except ValueError as exc:
        return BadLine(line, str(exc), text)
    return Interaction(line, user_id, item_id, rating, seconds)


def parse_lines(lines: Iterable[str]) -> Iterator[Interaction | BadLine]:
    """Every non-blank line of ``lines`` (numbered from 1), parsed; lazy."""
    for number, text in enumerate(lines, start=1):
        parsed = parse_line(text, number)
        if parsed is not None:
            yield parsed


def interaction_id(interaction: Interaction) -> str:
    """The event id of a log line: stable across replays of the same log."""
    digest = hashlib.sha256(f"{interaction.user_id}\t{interaction.item_id}\t{interaction.timestamp_s}".encode())
    return f"log-{digest.hexdigest()[:24]}"


def to_event(
    interaction: Interaction, *, event_type: EventType = EventType.PURCHASE, shift_us: int = 0
) -> GeneratedEvent:
    """The ``retail.interactions`` record of one log line (Kafka key = the user id)."""
    time_us = interaction.timestamp_s * 1_000_000 + shift_us
    event_id = interaction_id(interaction)
    record = {
        "interaction_id": event_id,
        "user_id": interaction.user_id,
        "item_id": interaction.item_id,
        "event_type": event_type.value,
        "rating": interaction.rating,
        "timestamp": rfc3339(time_us),
    }
    return GeneratedEvent(
        stream=Stream.INTERACTIONS,
        key=interaction.user_id,
        value=orjson.dumps(record),
        event_id=event_id,
        time_us=time_us,
        user_id=interaction.user_id,
        item_id=interaction.item_id,
        event_type=event_type,
    )
