"""The files Triton's native backends run, from an exported TorchScript module.

The libtorch backend runs ``model.pt`` as it is, so it only needs the module to honour the served contract
(``check_native_outputs``); the ONNX Runtime backend runs ``model.onnx``, written by ``write_onnx`` with
torch's TorchScript-based exporter (opset ``ONNX_OPSET``, a dynamic batch dimension).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch

from aimesh.core.errors import FailedPrecondition
from aimesh.training.model import load_torchscript

ONNX_OPSET = 17
"""ONNX opset of ``model.onnx`` (IR version 8 with torch 2.15): ONNX Runtime 1.13 and later run it."""

PROBE_ROWS = 2


def _outputs(module: torch.jit.ScriptModule, n_inputs: int) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = module(torch.zeros(PROBE_ROWS, n_inputs))
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, tuple) and all(isinstance(t, torch.Tensor) for t in out):
        return out
    raise FailedPrecondition(f"native Triton variants serve a tensor or a tuple of tensors; the module returns {out!r}")


def check_native_outputs(torchscript: Path, n_inputs: int, output_widths: Sequence[int]) -> None:
    """Check that the module at ``torchscript``, on a zero batch ``[2, n_inputs]``, returns one FP32 tensor
    ``[2, output_widths[j]]`` per output, as the native backends hand them to Triton unconverted (the python
    backend casts and reshapes). Raises ``FailedPrecondition`` naming the first difference."""
    outputs = _outputs(load_torchscript(torchscript), n_inputs)
    if len(outputs) != len(output_widths):
        raise FailedPrecondition(
            f"native Triton variants serve one tensor per output: the module returns {len(outputs)}, "
            f"the signature has {len(output_widths)}"
        )
    for j, (tensor, width) in enumerate(zip(outputs, output_widths, strict=True)):
        if tensor.dtype != torch.float32 or tuple(tensor.shape) != (PROBE_ROWS, width):
            raise FailedPrecondition(
                f"native Triton variants serve FP32 [batch, width] outputs: OUTPUT__{j} is {tensor.dtype} "
                f"{list(tensor.shape)}, the signature needs torch.float32 [{PROBE_ROWS}, {width}]"
            )


def write_onnx(torchscript: Path, target: Path, n_inputs: int, n_outputs: int) -> None:
    """Export the module at ``torchscript`` to ``target``: input ``INPUT__0``, outputs ``OUTPUT__0`` ...
    ``OUTPUT__<n_outputs - 1>``, dimension 0 dynamic; the file passes ``onnx.checker``. Raises
    ``FailedPrecondition`` when the module cannot be exported (an operator ONNX lacks, ...)."""
    module = load_torchscript(torchscript)  # a copy of its own: the exporter changes the module it exports
    outputs = [f"OUTPUT__{j}" for j in range(n_outputs)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and RNN-layout notices
            torch.onnx.export(
                module,
                (torch.zeros(PROBE_ROWS, n_inputs),),
                str(target),
                dynamo=False,
                input_names=["INPUT__0"],
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in ["INPUT__0", *outputs]},
                opset_version=ONNX_OPSET,
            )
        onnx.checker.check_model(str(target))
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:  # OnnxExporterError: a RuntimeError
        raise FailedPrecondition(f"the module cannot be exported to ONNX for the onnxruntime variant: {exc}") from exc
