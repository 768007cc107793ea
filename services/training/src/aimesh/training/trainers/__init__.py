"""Trainer plug-ins by name (see ``base`` for the protocol). Adding one: a module with a ``TRAINER``, listed here."""

from __future__ import annotations

from aimesh.core.errors import NotFound
from aimesh.training.trainers import logistic_regression, mlp_classifier, mlp_regressor, sequence_next_item
from aimesh.training.trainers.base import Trainer

TRAINERS: dict[str, Trainer] = {
    t.name: t
    for t in (logistic_regression.TRAINER, mlp_classifier.TRAINER, mlp_regressor.TRAINER, sequence_next_item.TRAINER)
}


def trainer(name: str) -> Trainer:
    """The trainer called ``name``; ``NotFound`` naming the known trainers."""
    found = TRAINERS.get(name)
    if found is None:
        raise NotFound(f"trainer {name!r} is unknown; trainers: {', '.join(sorted(TRAINERS))}")
    return found
