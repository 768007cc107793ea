"""Payload formats: the bytes of one record in its source's format <-> the JSON-like object the validator checks.

One ``PayloadFormat`` per ``SourceFormat``, chosen by ``format_for``; both the Kafka consumer and the gRPC push
path call it through ``aimesh.ingest.validation.Validator``, so they share one validation path.

- JSON (the default): one object, parsed with orjson. What is refused, and said so: bytes that are not
  UTF-8 ("invalid UTF-8 at byte N"), a number beyond the 64-bit float range such as ``1e400``
  (``OUT_OF_RANGE`` naming the top-level field that holds it), a payload that is not an object (naming
  what it is, e.g. ``null``), and an object, at any depth, with a key twice (``MALFORMED_PAYLOAD``
  naming the key: parsers disagree on which value wins, so such a payload has no one meaning). The
  duplicate check costs one regular-expression count per payload: the number of ``"key":`` patterns
  equals the number of keys decoded only when no key repeats (a pattern inside a string value makes the
  counts differ too; then the payload is re-parsed by the standard library to tell).
- CSV: one RFC 4180 line whose cells are named by ``csv_columns``. An empty cell is a missing value, and
  so are absent trailing cells (lines written before columns were appended stay valid).
  Cells of declared fields are converted to the declared type (int64, finite double, bool ``true``/``false``,
  timestamps as RFC 3339 text or epoch milliseconds); a cell that does not convert is kept as text, so
  the validator rejects it with ``TYPE_MISMATCH`` naming the field. Undeclared columns stay text.

``decode`` never raises anything but ``DecodeFailure`` (``reason`` a ``ReasonCode`` name, ``field`` when
one top-level field is to blame). ``replaced`` rewrites a decoded payload with some top-level values
replaced (PII and PAN tokens for the DLQ) in the same format, leaving everything else as it was.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import orjson

from aimesh.ingest.sources import FieldType, SourceDefinition, SourceFormat

_KEY = re.compile(rb'"[ \t\n\r]*:')
"""A key's closing quote and its colon (also matches a string value that begins with a colon)."""
_QUOTE_SPACE = re.compile(rb'"[ \t\n\r]')
MAX_SHOWN = 64


class PayloadFormat(Protocol):
    def decode(self, payload: bytes) -> dict[str, Any]:
        """The record's fields; raises ``DecodeFailure`` when ``payload`` is not one record."""
        ...

    def replaced(self, payload: bytes, document: dict[str, Any], values: Mapping[str, Any]) -> bytes:
        """``payload`` (which decoded to ``document``) with the top-level fields in ``values`` set to those values."""
        ...


class DecodeFailure(Exception):
    """The payload is not one record in the source's format; ``message`` says why (never echoes the payload).

    ``reason`` is the ``ReasonCode`` name (``MALFORMED_PAYLOAD`` unless one value is out of range);
    ``field`` the top-level field at fault, when there is one.
    """

    def __init__(self, message: str, *, reason: str = "MALFORMED_PAYLOAD", field: str = "") -> None:
        super().__init__(message)
        self.message, self.reason, self.field = message, reason, field


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Huge(float):
    """A number the standard library read as infinite (kept with its text, for the message)."""

    text = ""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of the standard library's parser: a dict, or ``_DuplicateKey``."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


def _huge(text: str) -> float:
    """``parse_float`` of the standard library's parser: the number, or a ``_Huge`` when infinite."""
    number = float(text)
    return number if math.isfinite(number) else _huge_number(number, text)


def _huge_int(text: str) -> int | float:
    """``parse_int`` of the standard library's parser: the integer, or a ``_Huge`` when no float holds it."""
    number = int(text)
    try:
        float(number)
    except OverflowError:
        return _huge_number(math.inf if number > 0 else -math.inf, text)
    return number


def _huge_number(number: float, text: str) -> _Huge:
    huge = _Huge(number)
    huge.text = text
    return huge


def _containers(value: Any) -> Iterator[dict[str, Any] | list[Any]]:
    """Every object and array in ``value``, at any depth (no recursion: orjson reads 1024 levels)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            yield item
            stack.extend(v for v in item if isinstance(v, dict | list))


def _key_patterns(payload: bytes) -> int:
    """How many ``"key":`` patterns ``payload`` has (``_KEY``); a C-level count when no quote is followed by
    whitespace."""
    if _QUOTE_SPACE.search(payload) is not None:
        return len(_KEY.findall(payload))
    return payload.count(b'":')


def _key_count(document: dict[str, Any], payload: bytes) -> int:
    """How many object keys ``document`` (decoded from ``payload``) holds, at every depth."""
    if payload.find(b"{", payload.find(b"{") + 1) < 0 and payload.find(b"[") < 0:
        return len(document)  # no second brace and no bracket: no nested object or array
    return sum(len(c) for c in _containers(document) if isinstance(c, dict))


def _find_huge(value: Any) -> _Huge | None:
    """The first number in ``value`` that the standard library read as infinite, if any."""
    if isinstance(value, _Huge):
        return value
    for container in _containers(value):
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, _Huge):
                return item
    return None


def _json_kind(value: Any) -> str:
    return {type(None): "null", bool: "a bool", str: "a string", list: "an array"}.get(type(value), "a number")


class JsonFormat:
    """One JSON object per payload (see the module doc for what is refused)."""

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise self._explained(payload, exc) from exc
        if not isinstance(document, dict):
            raise DecodeFailure(f"expected a JSON object, got {_json_kind(document)}")
        if _key_patterns(payload) != _key_count(document, payload):
            try:
                json.loads(payload, object_pairs_hook=_no_duplicates)
            except _DuplicateKey as duplicate:
                key = duplicate.key[:MAX_SHOWN]
                raise DecodeFailure(
                    f"duplicate key {key!r} in a JSON object (refused: which value counts would be ambiguous)"
                ) from None
            except RecursionError:
                raise DecodeFailure(
                    "nested too deep to check for duplicate keys (its key patterns and keys do not add up)"
                ) from None
            except ValueError:
                pass  # orjson read it; the standard library's stricter or looser reading does not count
        return document

    @staticmethod
    def _explained(payload: bytes, error: orjson.JSONDecodeError) -> DecodeFailure:
        """The failure to report for bytes orjson refused: the real cause where orjson's message hides it."""
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return DecodeFailure(
                f"not valid JSON: invalid UTF-8 at byte {exc.start} ({exc.reason}, byte 0x{payload[exc.start]:02x})"
            )
        if str(error).startswith("number is infinity"):
            try:
                document = json.loads(payload, parse_float=_huge, parse_int=_huge_int, parse_constant=float)
            except (ValueError, RecursionError):
                document = None
            found = _find_huge(document)
            if found is not None:
                field = ""
                if isinstance(document, dict):
                    field = next((k for k, v in document.items() if _find_huge(v) is found), "")
                where = f"{field}: " if field else ""
                return DecodeFailure(
                    f"{where}the number {found.text[:MAX_SHOWN]} is out of range "
                    "(beyond +-1.8e308, the 64-bit float range)",
                    reason="OUT_OF_RANGE",
                    field=field,
                )
        return DecodeFailure(f"not valid JSON: {error}")

    def replaced(self, payload: bytes, document: dict[str, Any], values: Mapping[str, Any]) -> bytes:
        return orjson.dumps(document | dict(values))


class CsvLineFormat:
    """One CSV line per payload, its cells named by the source's ``csv_columns`` (see the module doc)."""

    def __init__(self, source: SourceDefinition) -> None:
        self._columns = source.csv_columns
        self._types = {f.name: f.type for f in source.fields}

    def decode(self, payload: bytes) -> dict[str, Any]:
        cells = self._cells(payload)
        return {name: self._typed(name, cell) for name, cell in zip(self._columns, cells, strict=True) if cell != ""}

    def replaced(self, payload: bytes, document: dict[str, Any], values: Mapping[str, Any]) -> bytes:
        cells = [
            str(values[name]) if name in values else cell
            for name, cell in zip(self._columns, self._cells(payload), strict=True)
        ]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(cells)
        return out.getvalue().encode()

    def _cells(self, payload: bytes) -> list[str]:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeFailure(f"CSV line is not UTF-8: {exc.reason} at byte {exc.start}") from exc
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), strict=True)) or [[]]
        except csv.Error as exc:
            raise DecodeFailure(f"not a valid CSV line: {exc}") from exc
        if len(rows) != 1:
            raise DecodeFailure(f"expected one CSV line, got {len(rows)}")
        cells = rows[0]
        if len(cells) > len(self._columns):
            raise DecodeFailure(f"expected at most {len(self._columns)} CSV columns, got {len(cells)}")
        return cells + [""] * (len(self._columns) - len(cells))

    def _typed(self, name: str, cell: str) -> Any:
        kind = self._types.get(name)
        try:
            if kind is FieldType.INT64:
                return int(cell)
            if kind is FieldType.DOUBLE:
                number = float(cell)
                return number if math.isfinite(number) else cell
            if kind is FieldType.TIMESTAMP and cell.lstrip("-").isdigit():
                return int(cell)
        except ValueError:
            return cell
        if kind is FieldType.BOOL and cell.lower() in ("true", "false"):
            return cell.lower() == "true"
        return cell


def format_for(source: SourceDefinition) -> PayloadFormat:
    """The payload format of ``source``."""
    if source.format is SourceFormat.CSV:
        return CsvLineFormat(source)
    return JsonFormat()
