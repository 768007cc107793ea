"""Payload formats: the bytes of one record in its source's format <-> the JSON-like object the validator checks.

One ``PayloadFormat`` per ``SourceFormat``, chosen by ``format_for``; both the Kafka consumer and the gRPC push
path call it through ``aimesh.ingest.validation.Validator``, so they share one validation path.

- JSON (the default): one object, parsed with orjson.
- CSV: one RFC 4180 line whose cells are named by ``csv_columns``. An empty cell is a missing value, and
  so are absent trailing cells (lines written before columns were appended stay valid).
  Cells of declared fields are converted to the declared type (int64, finite double, bool ``true``/``false``,
  timestamps as RFC 3339 text or epoch milliseconds); a cell that does not convert is kept as text, so
  the validator rejects it with ``TYPE_MISMATCH`` naming the field. Undeclared columns stay text.

``decode`` never raises anything but ``DecodeFailure``. ``replaced`` rewrites a decoded payload with some
values replaced (PII tokens for the DLQ) in the same format, leaving everything else as it was.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from aimesh.ingest.sources import FieldType, SourceDefinition, SourceFormat


class PayloadFormat(Protocol):
    def decode(self, payload: bytes) -> dict[str, Any]:
        """The record's fields; raises ``DecodeFailure`` when ``payload`` is not one record."""
        ...

    def replaced(self, payload: bytes, document: dict[str, Any], values: Mapping[str, str]) -> bytes:
        """``payload`` (which decoded to ``document``) with the fields in ``values`` set to those strings."""
        ...


class DecodeFailure(Exception):
    """The payload is not one record in the source's format; ``message`` says why (never echoes the payload)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JsonFormat:
    """One JSON object per payload."""

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise DecodeFailure(f"not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise DecodeFailure(f"expected a JSON object, got {type(document).__name__}")
        return document

    def replaced(self, payload: bytes, document: dict[str, Any], values: Mapping[str, str]) -> bytes:
        return orjson.dumps(document | dict(values))


class CsvLineFormat:
    """One CSV line per payload, its cells named by the source's ``csv_columns`` (see the module doc)."""

    def __init__(self, source: SourceDefinition) -> None:
        self._columns = source.csv_columns
        self._types = {f.name: f.type for f in source.fields}

    def decode(self, payload: bytes) -> dict[str, Any]:
        cells = self._cells(payload)
        return {name: self._typed(name, cell) for name, cell in zip(self._columns, cells, strict=True) if cell != ""}

    def replaced(self, payload: bytes, document: dict[str, Any], values: Mapping[str, str]) -> bytes:
        cells = [values.get(name, cell) for name, cell in zip(self._columns, self._cells(payload), strict=True)]
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
