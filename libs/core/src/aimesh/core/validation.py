"""Request checks every gRPC API shares: well-known types, enum numbers, string lengths.

``check_message(message)`` is run on every decoded request by the gRPC interceptor
(``aimesh.core.grpc_server``), so no handler sees, anywhere in its request:

- a ``google.protobuf.Timestamp`` outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z or with
  ``nanos`` outside [0, 999999999] (``ToDatetime`` would raise ``ValueError``, an INTERNAL);
- a ``google.protobuf.Duration`` outside +-315,576,000,000 s, with ``|nanos|`` above 999999999 or with
  ``seconds`` and ``nanos`` of opposite signs;
- an enum field (singular, repeated or a map value) holding a number its enum does not define (proto3
  enums are open: the wire accepts any int32, and ``Enum.Name(n)`` or a dict keyed by the enum fails).

Each violation raises ``InvalidArgument`` naming the field by its path (``views[0].features[2].aggregation``).
Only the fields that can hold such a value are walked (planned once per message type), so a request
without any costs one lookup; other ``google.protobuf`` types (``Struct``, ``Any`` ...) are not entered.

``check_length(field, value, limit)`` bounds a string a handler forwards to a store (SQL, Elasticsearch):
``InvalidArgument`` naming the field, its UTF-8 length and the limit. ``MAX_NAME_BYTES`` is the limit for
names and identifiers (model, alias, source, view, kind ...).
"""

from __future__ import annotations

import functools

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from aimesh.core.errors import InvalidArgument

MAX_NAME_BYTES = 256
"""The longest name or identifier (UTF-8 bytes) a request may carry to a store."""

_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS = 315_576_000_000  # 10,000 years
_MAX_NANOS = 999_999_999
_ENUM_NAMES_SHOWN = 12


def check_length(field: str, value: str, limit: int = MAX_NAME_BYTES) -> None:
    """Raise ``InvalidArgument`` when ``value`` is longer than ``limit`` bytes in UTF-8."""
    if len(value) * 4 <= limit:  # no string of this many characters can exceed the limit
        return
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidArgument(f"{field} is {size} bytes long; the limit is {limit} bytes")


def check_message(message: Message, prefix: str = "") -> None:
    """Raise ``InvalidArgument`` for the first invalid Timestamp, Duration or enum number in ``message``
    (recursively; see the module doc). ``prefix`` is prepended to the field paths in the message."""
    name = message.DESCRIPTOR.full_name
    if name == _TIMESTAMP:
        _check_timestamp(prefix.rstrip(".") or "timestamp", message)
        return
    if name == _DURATION:
        _check_duration(prefix.rstrip(".") or "duration", message)
        return
    plan = _plan(message.DESCRIPTOR)
    if not plan:
        return
    for field, value in message.ListFields():
        if field.name not in plan:
            continue
        path = f"{prefix}{field.name}"
        if _is_map(field):
            value_field = _field_types(field)
            for key, item in value.items():
                _check_value(value_field, item, f"{path}[{key!r}]")
        elif _is_repeated(field):
            for i, item in enumerate(value):
                _check_value(field, item, f"{path}[{i}]")
        else:
            _check_value(field, value, path)


def _check_value(field: FieldDescriptor, value: object, path: str) -> None:
    if field.enum_type is not None:
        assert isinstance(value, int)
        enum = field.enum_type
        if value not in enum.values_by_number:
            names = [v.name for v in enum.values]
            known = ", ".join(names[:_ENUM_NAMES_SHOWN]) + (" ..." if len(names) > _ENUM_NAMES_SHOWN else "")
            raise InvalidArgument(f"{path} is {value}, which is not a {enum.name} value ({known})")
    elif isinstance(value, Message):
        check_message(value, f"{path}.")


def _check_timestamp(path: str, ts: Message) -> None:
    seconds: int = ts.seconds  # type: ignore[attr-defined]
    nanos: int = ts.nanos  # type: ignore[attr-defined]
    if not 0 <= nanos <= _MAX_NANOS:
        raise InvalidArgument(f"{path} is not a valid Timestamp: nanos {nanos} is outside [0, {_MAX_NANOS}]")
    if not _MIN_TIMESTAMP_SECONDS <= seconds <= _MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(
            f"{path} is not a valid Timestamp: seconds {seconds} is outside 0001-01-01..9999-12-31 "
            f"([{_MIN_TIMESTAMP_SECONDS}, {_MAX_TIMESTAMP_SECONDS}])"
        )


def _check_duration(path: str, d: Message) -> None:
    seconds: int = d.seconds  # type: ignore[attr-defined]
    nanos: int = d.nanos  # type: ignore[attr-defined]
    if abs(seconds) > _MAX_DURATION_SECONDS:
        raise InvalidArgument(f"{path} is not a valid Duration: seconds {seconds} is outside +-{_MAX_DURATION_SECONDS}")
    if abs(nanos) > _MAX_NANOS:
        raise InvalidArgument(f"{path} is not a valid Duration: nanos {nanos} is outside +-{_MAX_NANOS}")
    if (seconds < 0 < nanos) or (nanos < 0 < seconds):
        raise InvalidArgument(f"{path} is not a valid Duration: seconds {seconds} and nanos {nanos} differ in sign")


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _field_types(field: FieldDescriptor) -> FieldDescriptor:
    """The field that holds the values: a map's ``value`` field, else ``field`` itself."""
    entry = field.message_type
    return entry.fields_by_name["value"] if entry is not None and entry.GetOptions().map_entry else field


@functools.cache
def _plan(descriptor: Descriptor) -> frozenset[str]:
    """The names of ``descriptor``'s fields that can hold, at any depth, a value ``check_message`` checks."""
    return frozenset(f.name for f in descriptor.fields if _may_hold(_field_types(f)))


def _may_hold(field: FieldDescriptor) -> bool:
    if field.enum_type is not None:
        return True
    if field.message_type is None:
        return False
    return _type_may_hold(field.message_type)


@functools.cache
def _type_may_hold(descriptor: Descriptor) -> bool:
    """Whether a message of this type can contain a Timestamp, a Duration or an enum (types reachable from it)."""
    seen: set[str] = set()
    stack = [descriptor]
    while stack:
        current = stack.pop()
        if current.full_name in (_TIMESTAMP, _DURATION):
            return True
        if current.full_name in seen or current.full_name.startswith("google.protobuf."):
            continue
        seen.add(current.full_name)
        for f in current.fields:
            if f.enum_type is not None:
                return True
            if f.message_type is not None:
                stack.append(f.message_type)
    return False
