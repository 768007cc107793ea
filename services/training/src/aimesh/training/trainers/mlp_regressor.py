"""``mlp_regressor``: ReLU hidden layers over the encoded inputs, predicting a number (numeric labels).

Trained with MSE on the standardised target; the exported module returns the label's unit.
Parameters: ``epochs`` (40), ``batch_size`` (256), ``learning_rate`` (0.003), ``l2`` (0), ``hidden``
(layer sizes, "32,16"), ``seed`` (7).
"""

from __future__ import annotations

from aimesh.api.common.v1 import signature_pb2
from aimesh.training.trainers.tabular import mlp_trainer

TRAINER = mlp_trainer("mlp_regressor", signature_pb2.TASK_REGRESSION, epochs=40)
