"""The ``config.pbtxt`` texts of an exported model, one per serving variant.

Every variant has the same contract, the one inference sends and reads: ``INPUT__0`` FP32 ``[n_inputs]``
-> ``OUTPUT__j`` FP32 ``[output_widths[j]]`` for each output, batched (``max_batch_size`` 256, dynamic
batching), the newest two versions served. The variants differ in what executes the version:

- ``python``: the python backend runs ``model.py``, which loads ``model.pt`` with torch (the local Triton of
  the ``nvidia-pytriton`` wheel has only this backend); one CPU instance.
- ``pytorch_libtorch``: Triton's libtorch backend runs ``model.pt`` (TorchScript) natively; GPU instances.
- ``onnxruntime``: Triton's ONNX Runtime backend runs ``model.onnx``; GPU instances.

The native variants are what NGC ``tritonserver`` images run without a python backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

TritonVariant = Literal["python", "pytorch_libtorch", "onnxruntime"]
VARIANTS: tuple[TritonVariant, ...] = get_args(TritonVariant)
NATIVE_VARIANTS: tuple[TritonVariant, ...] = ("pytorch_libtorch", "onnxruntime")

MAX_BATCH_SIZE = 256
KEPT_VERSIONS = 2
"""Triton serves the newest two versions of a model, so champion and a challenger can be loaded together."""

MODEL_FILES: dict[TritonVariant, str] = {
    "python": "model.py",
    "pytorch_libtorch": "model.pt",
    "onnxruntime": "model.onnx",
}
"""The file in each version directory that the variant's backend loads."""

_RUNTIME: dict[TritonVariant, str] = {
    "python": 'backend: "python"',
    "pytorch_libtorch": 'platform: "pytorch_libtorch"\ndefault_model_filename: "model.pt"',
    "onnxruntime": 'platform: "onnxruntime_onnx"\ndefault_model_filename: "model.onnx"',
}


def model_config(
    variant: TritonVariant, n_inputs: int, output_widths: Sequence[int] = (1,), *, gpu_instances: int = 1
) -> str:
    """``config.pbtxt`` of ``variant`` (see the module doc); the model name is the directory's.

    ``gpu_instances`` is the ``KIND_GPU`` instance count (per GPU) of the native variants; the python
    variant always has one ``KIND_CPU`` instance. Raises ``ValueError`` for an unknown variant or a count
    below 1.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown Triton variant {variant!r}; one of {', '.join(VARIANTS)}")
    if gpu_instances < 1:
        raise ValueError(f"gpu_instances must be at least 1, not {gpu_instances}")
    instances = (
        "{ kind: KIND_CPU, count: 1 }" if variant == "python" else f"{{ kind: KIND_GPU, count: {gpu_instances} }}"
    )
    outputs = ",\n".join(
        f"""  {{
    name: "OUTPUT__{j}"
    data_type: TYPE_FP32
    dims: [ {width} ]
  }}"""
        for j, width in enumerate(output_widths)
    )
    return f"""# Written by aimesh training. The model name is the directory name.
{_RUNTIME[variant]}
max_batch_size: {MAX_BATCH_SIZE}
dynamic_batching {{ max_queue_delay_microseconds: 500 }}
instance_group [{instances}]
version_policy: {{ latest: {{ num_versions: {KEPT_VERSIONS} }} }}
input [
  {{
    name: "INPUT__0"
    data_type: TYPE_FP32
    dims: [ {n_inputs} ]
  }}
]
output [
{outputs}
]
"""
