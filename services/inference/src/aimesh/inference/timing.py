"""Time helpers every inference use case shares: the caller's deadline and the event's time fields."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.core.errors import DeadlineExceeded


@dataclass(frozen=True, slots=True)
class Deadline:
    """The caller's deadline on the event loop's clock; ``at`` None means no deadline."""

    at: float | None

    @classmethod
    def after(cls, time_left: float | None) -> Deadline:
        """The deadline ``time_left`` seconds from now (None: none). Call inside the event loop."""
        return cls(None if time_left is None else asyncio.get_running_loop().time() + time_left)

    @classmethod
    def reserving(cls, time_left: float | None, reserve_s: float) -> Deadline:
        """The deadline of a caller's downstream calls: ``time_left`` less ``reserve_s`` (kept back so that a
        fallback is answered before the caller's own deadline; never below now), or none."""
        return cls.after(None if time_left is None else max(time_left - reserve_s, 0.0))

    def left(self, step: str) -> float | None:
        """Seconds left for ``step`` (None: no deadline); raises ``DeadlineExceeded`` naming it when none are."""
        if self.at is None:
            return None
        remaining = self.at - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise DeadlineExceeded(f"the deadline passed before {step}")
        return remaining


def duration(seconds: float) -> Duration:
    """``seconds`` as a ``Duration`` (nanosecond precision)."""
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def timestamp(at: datetime) -> Timestamp:
    """``at`` (timezone-aware) as a ``Timestamp``."""
    t = Timestamp()
    t.FromDatetime(at)
    return t
