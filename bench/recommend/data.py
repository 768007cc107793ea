"""The benchmark's entities and their histories: seeded, long-tailed item popularity, 1..length items each."""

from __future__ import annotations

import numpy as np

from bench.recommend.model import vocabulary


def histories(entities: int, vocabulary_size: int, length: int, seed: int) -> dict[str, list[str]]:
    """Entity id -> its history (oldest first): ``1..length`` items drawn by a Zipf(1.1) rank, all known."""
    rng = np.random.default_rng(seed)
    items = vocabulary(vocabulary_size)
    weights = 1.0 / np.arange(1, vocabulary_size + 1) ** 1.1
    weights /= weights.sum()
    out: dict[str, list[str]] = {}
    for e in range(entities):
        n = int(rng.integers(1, length + 1))
        out[f"m-{e:05d}"] = [items[i] for i in rng.choice(vocabulary_size, size=n, p=weights)]
    return out


def popular(vocabulary_size: int, top: int = 1000) -> list[str]:
    """The fallback list: the Zipf ranks' first ``top`` items."""
    return vocabulary(vocabulary_size)[:top]
