"""PII tokenisation: a keyed hash, so equal values get equal tokens but the value cannot be recovered."""

from __future__ import annotations

import hashlib
import hmac
import re

_LONG_DIGIT_RUN = re.compile(rb"(?<![0-9])[0-9]{12,19}(?![0-9])")
"""12 to 19 digits: the length of most account and identification numbers."""


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
