"""Offset-based pagination for the List* RPCs and timestamp conversion for stored times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.common.v1 import common_pb2
from aimesh.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    """Rows ``[offset, offset + limit)`` of a listing."""

    offset: int
    limit: int

    def response(self, returned: int) -> common_pb2.PageResponse:
        """The next-page token when this page came back full (the caller fetched ``limit + 1`` rows)."""
        if returned > self.limit:
            return common_pb2.PageResponse(next_page_token=str(self.offset + self.limit))
        return common_pb2.PageResponse()


_MAX_TOKEN_DIGITS = 18
"""Offsets this server issues fit in 18 digits (a SQL BIGINT; ``int()`` refuses over 4300 digits)."""


def page_of(request: common_pb2.PageRequest) -> Page:
    """The page a request asks for; raises ``InvalidArgument`` for a negative size or a bad token."""
    if request.page_size < 0:
        raise InvalidArgument("page.page_size must not be negative")
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not request.page_token:
        return Page(0, size)
    if len(request.page_token) > _MAX_TOKEN_DIGITS or not request.page_token.isdigit():
        raise InvalidArgument(f"page.page_token {request.page_token!r} is not a token this server issued")
    return Page(int(request.page_token), size)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp for ``value``; None stays None."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(utc(value))
    return ts
