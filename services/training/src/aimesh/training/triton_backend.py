"""Triton python-backend model that serves an exported trainer module; copied as ``<model>/<version>/model.py``.

``initialize`` loads ``<version>/model.pt`` (TorchScript) with torch on CPU, or on the GPU when the
instance is a GPU instance and CUDA is available. ``execute`` concatenates the (dynamically batched)
requests, runs the module once and splits the result: ``INPUT__0`` FP32 ``[-1, n]`` ->
``OUTPUT__0`` FP32 ``[-1, k]``, the module's output (a probability, a predicted value ...); a module that
returns a tuple of tensors gives ``OUTPUT__0``, ``OUTPUT__1`` ... in tuple order. Runs inside
``triton_python_backend_stub``; ``triton_python_backend_utils`` is provided by the backend at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]


class TritonPythonModel:
    """The python-backend entry point: ``initialize`` once per instance, ``execute`` per batch of requests."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the TorchScript module of this version; raises when the file is missing or invalid."""
        path = Path(args["model_repository"]) / args["model_version"] / "model.pt"
        use_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        device_id = args.get("model_instance_device_id", "0")
        self.device = torch.device(f"cuda:{device_id}" if use_gpu else "cpu")
        torch.set_num_threads(1)
        self.module = torch.jit.load(str(path), map_location=self.device)  # type: ignore[no-untyped-call]
        self.module.eval()

    def execute(self, requests: list[Any]) -> list[Any]:
        """Score all requests in one forward pass; one response per request, in order."""
        inputs = [pb_utils.get_input_tensor_by_name(r, "INPUT__0").as_numpy() for r in requests]
        sizes = [len(x) for x in inputs]
        batch = torch.from_numpy(np.ascontiguousarray(np.concatenate(inputs), dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            out = self.module(batch)
        tensors = out if isinstance(out, tuple) else (out,)
        outputs = [t.cpu().numpy().astype(np.float32) for t in tensors]
        cuts = np.cumsum(sizes)[:-1]
        per_output = [np.split(o, cuts) for o in outputs]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(f"OUTPUT__{j}", parts[i]) for j, parts in enumerate(per_output)]
            )
            for i in range(len(requests))
        ]
