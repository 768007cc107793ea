"""``logistic_regression``: one linear layer over the encoded inputs and a sigmoid (binary labels).

Parameters: ``epochs`` (50), ``batch_size`` (256), ``learning_rate`` (0.01), ``l2`` (weight decay, 1e-4),
``seed`` (7).
"""

from __future__ import annotations

from torch import nn

from aimesh.api.common.v1 import signature_pb2
from aimesh.training.trainers.tabular import TabularTrainer

TRAINER = TabularTrainer(
    name="logistic_regression",
    task=signature_pb2.TASK_BINARY_CLASSIFICATION,
    defaults={"epochs": "50", "batch_size": "256", "learning_rate": "0.01", "l2": "0.0001", "seed": "7"},
    body=lambda width, params: nn.Linear(width, 1),
)
