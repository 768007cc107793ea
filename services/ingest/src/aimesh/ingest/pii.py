"""PII tokenisation in ingest: the keyed hash and the PAN scanner of ``aimesh.core.pan``."""

from __future__ import annotations

from aimesh.core.pan import PanMasker, Tokenizer

__all__ = ["PanMasker", "Tokenizer"]
