"""Linear scorer for Triton's python backend: ``OUTPUT__0 = INPUT__0 @ weights + bias``.

Input FP32 ``[batch, 4]``, output FP32 ``[batch, 1]``. ``weights`` (4 comma-separated floats) and
``bias`` (one float) come from the ``parameters`` of ``config.pbtxt``. numpy only, no torch, so one
instance costs little memory. Runs inside ``triton_python_backend_stub``; ``triton_python_backend_utils``
is provided by the backend at run time.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

N_FEATURES = 4


class TritonPythonModel:
    """The python-backend entry point: ``initialize`` once per instance, ``execute`` per batch of requests."""

    def initialize(self, args: dict[str, str]) -> None:
        """Parse the weights from the model config; raise ``ValueError`` when they are malformed."""
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        weights = [float(v) for v in params["weights"]["string_value"].split(",")]
        if len(weights) != N_FEATURES:
            raise ValueError(f"'weights' needs {N_FEATURES} values, got {len(weights)}")
        self.weights = np.asarray(weights, dtype=np.float32).reshape(N_FEATURES, 1)
        self.bias = np.float32(params["bias"]["string_value"])

    def execute(self, requests: list[Any]) -> list[Any]:
        """Score each request of the (dynamically batched) list; one response per request, in order."""
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT__0").as_numpy()
            y = (x.astype(np.float32) @ self.weights + self.bias).astype(np.float32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT__0", y)]))
        return responses
