"""PII tokenisation: a keyed hash, so equal values get equal tokens but the value cannot be recovered."""

from __future__ import annotations

import hashlib
import hmac


class Tokenizer:
    """HMAC-SHA256 under a secret key; ``token(value)`` is the lowercase hex digest of the UTF-8 value."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the PII secret must not be empty")
        self._key = secret.encode()

    def token(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
