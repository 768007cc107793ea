"""PII tokens and a scanner that finds primary account numbers (PANs) in free text and tokenises them.

``Tokenizer`` is the keyed hash every PII token is made with: ``token(value)`` is the lowercase hex
HMAC-SHA256 of the UTF-8 value under a secret, so equal values get equal tokens and the value cannot
be recovered without the secret.

``PanMasker`` finds PAN-shaped digit runs in strings, bytes and decoded JSON values and replaces each
with ``Tokenizer.token`` of its digits (separators removed), i.e. the token a declared PII field with
those digits gets. A match is

- 13 to 19 digits, optionally grouped by single spaces or dashes (``4111 1111 1111 1111``,
  ``4111-1111-1111-1111``), not directly preceded or followed by another digit (or by a separator and
  a digit: a longer grouped number is tried group-aligned, see below), and
- Luhn-valid (the check digit every PAN carries; about one in ten random digit runs passes it).

For a grouped run with more digits than 19 (or one that fails Luhn as a whole) every window of whole
groups with 13-19 digits is tried, longest and leftmost first, so a PAN followed by another group
(``4111 1111 1111 1111 42``) is still found. A digit run inside a 64-hex-digit token (an earlier
mask's output) is left alone, so masking is idempotent.

What it does not find: a PAN split by other separators (dots, slashes, several spaces), written with
letters in between, or hidden inside a longer undelimited digit run; numbers that are Luhn-valid by
chance (order ids, timestamps with 13-19 digits) are tokenised too, which is the safe side.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator
from typing import Any

_LONG_DIGIT_RUN = re.compile(rb"(?<![0-9])[0-9]{12,19}(?![0-9])")
"""12 to 19 digits: the length of most account and identification numbers."""

_GROUPED_RUN = r"(?<![0-9])(?<![0-9][ -])[0-9]+(?:[ -][0-9]+)*(?![0-9])"
_RUN_TEXT = re.compile(_GROUPED_RUN)
_RUN_BYTES = re.compile(_GROUPED_RUN.encode())
_TOKEN_TEXT = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_TOKEN_BYTES = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_SEPARATORS = re.compile(r"[ -]")
_CANDIDATE_TEXT = re.compile(r"[0-9](?:[ -]?[0-9]){12}")
"""13 digits, optionally grouped: a string without this holds no PAN (one C-level search rules it out)."""
_CANDIDATE_BYTES = re.compile(rb"[0-9](?:[ -]?[0-9]){12}")
_DIGITS = re.compile(r"[0-9]+")
MIN_DIGITS, MAX_DIGITS = 13, 19
_END = object()


class Tokenizer:
    """HMAC-SHA256 under a secret key; ``token(value)`` is the lowercase hex digest of the UTF-8 value."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the PII secret must not be empty")
        self._key = secret.encode()

    def token(self, value: str) -> str:
        return hmac.digest(self._key, value.encode(), hashlib.sha256).hex()

    def scrub_digit_runs(self, payload: bytes) -> tuple[bytes, int]:
        """Replace every run of 12-19 digits (anything that may be an identifying number) by its token.

        For payloads that cannot be parsed, so their PII fields cannot be found by name: the DLQ keeps
        them byte for byte except for these runs. Returns the scrubbed bytes and how many runs were replaced.
        """
        scrubbed, count = _LONG_DIGIT_RUN.subn(lambda m: self.token(m.group(0).decode()).encode(), payload)
        return scrubbed, count


def luhn_valid(digits: str) -> bool:
    """Whether the decimal string ``digits`` passes the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def is_pan(digits: str) -> bool:
    """Whether ``digits`` (decimal digits only) has a PAN's length (13-19) and passes Luhn."""
    return MIN_DIGITS <= len(digits) <= MAX_DIGITS and digits.isdigit() and luhn_valid(digits)


def _pan_spans(run: str) -> list[tuple[int, int]]:
    """The (start, end) offsets within ``run`` (digit groups joined by single separators) of its PANs.

    Linear in the run's length: the Luhn sum of a window of whole groups comes from prefix sums, and
    only windows of 13-19 digits are tried.
    """
    groups = [(m.start(), m.end()) for m in _DIGITS.finditer(run)]
    if len(groups) == 1:
        return [(0, len(run))] if is_pan(run) else []
    digits = "".join(run[start:end] for start, end in groups)
    if len(digits) < MIN_DIGITS:
        return []
    if is_pan(digits):
        return [(0, len(run))]
    # sums[k][i]: the sum of the digits before i at indexes of parity k, plain (k) or doubled (2 + k)
    sums = [[0], [0], [0], [0]]
    for index, char in enumerate(digits):
        digit = ord(char) - 48
        doubled = digit * 2 - 9 if digit > 4 else digit * 2
        parity = index % 2
        for k, add in ((parity, digit), (1 - parity, 0), (2 + parity, doubled), (3 - parity, 0)):
            sums[k].append(sums[k][-1] + add)

    def luhn_window(start: int, end: int) -> bool:
        plain = (end - 1) % 2
        total = sums[plain][end] - sums[plain][start] + sums[3 - plain][end] - sums[3 - plain][start]
        return total % 10 == 0

    bounds: list[tuple[int, int]] = []
    at = 0
    for start, end in groups:
        bounds.append((at, at + end - start))
        at += end - start
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        found = None
        for last in range(first, len(groups)):
            size = bounds[last][1] - bounds[first][0]
            if size > MAX_DIGITS:
                break
            if size >= MIN_DIGITS and luhn_window(bounds[first][0], bounds[last][1]):
                found = last
        if found is None:
            first += 1
            continue
        spans.append((groups[first][0], groups[found][1]))
        first = found + 1
    return spans


def _outside(spans: list[tuple[int, int]], tokens: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ``spans`` (sorted) that do not lie inside one of ``tokens`` (sorted, disjoint)."""
    kept: list[tuple[int, int]] = []
    at = 0
    for start, end in spans:
        while at < len(tokens) and tokens[at][1] <= start:
            at += 1
        if at < len(tokens) and tokens[at][0] <= start and end <= tokens[at][1]:
            continue
        kept.append((start, end))
    return kept


class PanMasker:
    """Replaces the PANs in text, bytes and decoded JSON values by their tokens (see the module doc)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._token: Callable[[str], str] = tokenizer.token

    def scrub(self, payload: bytes) -> tuple[bytes, int]:
        """Bytes that cannot be parsed as they are kept: every 12-19 digit run (``Tokenizer.scrub_digit_runs``)
        and then every grouped PAN (``mask_bytes``) tokenised; returns them and how many were replaced."""
        scrubbed, runs = self._tokenizer.scrub_digit_runs(payload)
        masked, pans = self.mask_bytes(scrubbed)
        return masked, runs + pans

    def mask_text(self, text: str) -> tuple[str, int]:
        """``text`` with every PAN replaced by its token, and how many were replaced; never raises."""
        if len(text) < MIN_DIGITS or _CANDIDATE_TEXT.search(text) is None:
            return text, 0
        runs = [m.span() for m in _RUN_TEXT.finditer(text)]
        if not runs:
            return text, 0
        tokens = [m.span() for m in _TOKEN_TEXT.finditer(text)] if len(text) >= 64 else []
        spans = [
            (run_start + start, run_start + end)
            for run_start, run_end in _outside(runs, tokens)
            for start, end in _pan_spans(text[run_start:run_end])
        ]
        if not spans:
            return text, 0
        pieces: list[str] = []
        at = 0
        for start, end in spans:
            pieces += (text[at:start], self._token(_SEPARATORS.sub("", text[start:end])))
            at = end
        pieces.append(text[at:])
        return "".join(pieces), len(spans)

    def mask_bytes(self, data: bytes) -> tuple[bytes, int]:
        """``data`` (any bytes, UTF-8 or not) with every ASCII-digit PAN replaced by its token, and the count."""
        if len(data) < MIN_DIGITS or _CANDIDATE_BYTES.search(data) is None:
            return data, 0
        runs = [m.span() for m in _RUN_BYTES.finditer(data)]
        if not runs:
            return data, 0
        tokens = [m.span() for m in _TOKEN_BYTES.finditer(data)] if len(data) >= 64 else []
        spans = [
            (run_start + start, run_start + end)
            for run_start, run_end in _outside(runs, tokens)
            for start, end in _pan_spans(data[run_start:run_end].decode("ascii"))
        ]
        if not spans:
            return data, 0
        pieces: list[bytes] = []
        at = 0
        for start, end in spans:
            digits = _SEPARATORS.sub("", data[start:end].decode("ascii"))
            pieces += (data[at:start], self._token(digits).encode())
            at = end
        pieces.append(data[at:])
        return b"".join(pieces), len(spans)

    def mask_value(self, value: Any) -> tuple[Any, int]:
        """A decoded JSON value with its PANs tokenised, and the count; never raises.

        Strings are masked as by ``mask_text``; an integer (or a float with an integral value) whose
        decimal digits are a PAN becomes its token (a string); objects (keys and values) and arrays are
        masked into new containers, at any depth (no recursion). Anything else is returned as it is. The
        input is never modified.
        """
        if not isinstance(value, dict | list):
            return self._mask_leaf(value)
        total = 0
        stack: list[tuple[dict[Any, Any] | list[Any], Iterator[Any]]] = []

        def open_container(container: dict[Any, Any] | list[Any]) -> dict[Any, Any] | list[Any]:
            copy: dict[Any, Any] | list[Any] = {} if isinstance(container, dict) else []
            stack.append((copy, iter(container.items() if isinstance(container, dict) else container)))
            return copy

        top = open_container(value)
        while stack:
            copy, items = stack[-1]
            item: Any = next(items, _END)
            if item is _END:
                stack.pop()
                continue
            key: Any
            child: Any
            key, child = item if isinstance(copy, dict) else (None, item)
            if isinstance(key, str):
                key, count = self.mask_text(key)
                total += count
            if isinstance(child, dict | list):
                child = open_container(child)
            else:
                child, count = self._mask_leaf(child)
                total += count
            if isinstance(copy, dict):
                copy[key] = child
            else:
                copy.append(child)
        return (top, total) if total else (value, 0)

    def _mask_leaf(self, value: Any) -> tuple[Any, int]:
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, 0
        if isinstance(value, float):
            if not (value.is_integer() and 1e12 <= abs(value) < 1e19):
                return value, 0
            value = int(value)
        digits = str(abs(value))
        return (self._token(digits), 1) if is_pan(digits) else (value, 0)
