"""``mlp_classifier``: ReLU hidden layers over the encoded inputs and a sigmoid (binary labels).

Parameters: ``epochs`` (30), ``batch_size`` (256), ``learning_rate`` (0.003), ``l2`` (0), ``hidden``
(layer sizes, "32,16"), ``seed`` (7).
"""

from __future__ import annotations

from aimesh.api.common.v1 import signature_pb2
from aimesh.training.trainers.tabular import mlp_trainer

TRAINER = mlp_trainer("mlp_classifier", signature_pb2.TASK_BINARY_CLASSIFICATION, epochs=30)
