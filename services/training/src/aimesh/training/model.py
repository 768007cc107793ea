"""Trained modules as files: TorchScript save and load, and CPU prediction (what the parity check compares).

The modules themselves come from the trainers (``aimesh.training.trainers``).
"""

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

log = logging.getLogger(__name__)


def predict(module: nn.Module, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Probabilities ``[n]`` from ``module`` (eager or scripted) on CPU."""
    with torch.inference_mode():
        out = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return np.asarray(out.numpy(), dtype=np.float32).reshape(-1)


def predict_outputs(module: nn.Module, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Every output of ``module`` on CPU side by side, ``[n, sum of output widths]``: a module returning one
    tensor gives its columns, one returning a tuple the columns of each tensor in order (what Triton's
    ``OUTPUT__0``, ``OUTPUT__1`` ... hold)."""
    with torch.inference_mode():
        out = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    parts = out if isinstance(out, tuple) else (out,)
    return np.concatenate([np.asarray(p.numpy(), dtype=np.float32).reshape(len(x), -1) for p in parts], axis=1)


def save_torchscript(module: nn.Module, path: Path) -> None:
    """Script ``module`` (CPU) and save it to ``path``; the file is what Triton's ``model.py`` loads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is the served format (Triton model.py)
        scripted = torch.jit.script(module.cpu().eval())
    tmp = path.with_name(f".{path.name}.tmp")
    scripted.save(str(tmp))  # type: ignore[no-untyped-call]
    tmp.replace(path)


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """The scripted module saved by ``save_torchscript``, on CPU, in eval mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    module.eval()
    return module
