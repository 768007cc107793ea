"""Synthetic sequential interactions with a learnable next-item structure, and the ``Dataset`` a
``sequence_next_item`` run would build from them (through the real signature codec and split).

Each entity walks a ring of ``items`` items: the next item is ``current + 1`` (probability ``0.7``) or
``current + 2`` (``0.2``) around the ring, else (``0.1``) a jump to an item drawn from a skewed
(Zipf-like) popularity. So the next item is predictable from the history, and popularity alone is a weak
baseline. Shared by the unit tests, tests/integration/test_next_item_export.py and
bench/recommend/training.py (loaded by file path there). Not a test module itself.
"""

from __future__ import annotations

import numpy as np

from aimesh.core.signature import InputEncoder
from aimesh.training.dataset import leave_last_out_split
from aimesh.training.next_item import infer_item_inputs, target_classes
from aimesh.training.trainers.base import Dataset

FEATURE = "history:recent_items"


def item_name(k: int) -> str:
    return f"i{k:06d}"


def walks(entities: int, items: int, per_entity: int, seed: int) -> list[list[int]]:
    """``entities`` walks of ``per_entity`` item numbers each (see the module doc)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** 0.8
    weights /= weights.sum()
    out = []
    for _ in range(entities):
        moves = rng.random(per_entity)
        jumps = rng.choice(items, size=per_entity, p=weights)
        walk = [int(jumps[0])]
        for t in range(1, per_entity):
            if moves[t] < 0.7:
                walk.append((walk[-1] + 1) % items)
            elif moves[t] < 0.9:
                walk.append((walk[-1] + 2) % items)
            else:
                walk.append(int(jumps[t]))
        out.append(walk)
    return out


def dataset(entities: int, items: int, per_entity: int, *, max_len: int = 20, seed: int = 3) -> Dataset:
    """The ``Dataset`` of the walks: one row per step after the first (its history: the items before it,
    as the feature service's last-n list would give them; its target: its own item), each entity's last
    row evaluating (leave-last-out), inputs inferred from the training slice."""
    names = [item_name(k) for k in range(items)]
    histories: list[tuple[str, ...]] = []
    targets: list[str] = []
    keys: list[str | None] = []
    for e, walk in enumerate(walks(entities, items, per_entity, seed)):
        for t in range(1, len(walk)):
            histories.append(tuple(names[k] for k in walk[max(0, t - max_len) : t]))
            targets.append(names[walk[t]])
            keys.append(f"e{e}")
    train = leave_last_out_split(keys)
    train_histories = [h for h, keep in zip(histories, train, strict=True) if keep]
    train_targets = [t for t, keep in zip(targets, train, strict=True) if keep]
    inputs = infer_item_inputs([FEATURE], [train_histories], train_targets, max_len=max_len)
    x = InputEncoder(inputs).matrix([histories])
    y = target_classes(targets, inputs[0].vocabulary)
    return Dataset(tuple(inputs), x[train], y[train], x[~train], y[~train])
