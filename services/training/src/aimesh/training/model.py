"""The fraud MLP: normalisation, two hidden layers and a sigmoid in one TorchScript-able module.

``train_mlp`` blocks (CPU or CUDA work); call it from a worker thread. It is deterministic for a
given seed on CPU.
"""

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

log = logging.getLogger(__name__)


class FraudMlp(nn.Module):
    """``x [batch, n] -> P(fraud) [batch, 1]``: ``(x - mean) / std``, two ReLU layers, a logit, a sigmoid.

    ``logits`` is what training optimises (BCE with logits); ``forward`` is what is exported and served.
    (No ``from __future__ import annotations`` in this module: TorchScript reads the buffer annotations.)
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1).clone())
        self.register_buffer("std", std.reshape(1, -1).clone())
        n = int(mean.numel())
        self.body = nn.Sequential(
            nn.Linear(n, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(), nn.Linear(hidden[1], 1)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body((x - self.mean) / self.std)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters of ``train_mlp``."""

    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    hidden: tuple[int, int] = (32, 16)
    seed: int = 7
    threads: int = 1


def device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def normalisation(x: NDArray[np.float32]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of the training slice; constant features get std 1 (no division by 0)."""
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    std[std < 1e-6] = 1.0
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def train_mlp(
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    params: TrainParams,
    progress: Callable[[int, float], None] = lambda epoch, loss: None,
) -> FraudMlp:
    """Train on ``x [n, f]``, ``y [n]`` (0/1) with BCE weighted by negatives/positives; returns a CPU module.

    ``progress(epoch, mean_loss)`` is called after each epoch. Blocks for the whole training.
    """
    torch.manual_seed(params.seed)
    torch.set_num_threads(params.threads)
    generator = torch.Generator().manual_seed(params.seed)
    dev = device()
    mean, std = normalisation(x)
    module = FraudMlp(mean, std, params.hidden).to(dev)
    n_pos = float(y.sum())
    pos_weight = torch.tensor([(len(y) - n_pos) / max(n_pos, 1.0)], device=dev)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimiser = torch.optim.Adam(module.parameters(), lr=params.learning_rate)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
    ys = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).reshape(-1, 1).to(dev)
    module.train()
    for epoch in range(1, params.epochs + 1):
        order = torch.randperm(len(xs), generator=generator).to(dev)
        total = 0.0
        for start in range(0, len(xs), params.batch_size):
            idx = order[start : start + params.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(module.logits(xs[idx]), ys[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        progress(epoch, total / len(xs))
    module.eval()
    return module.cpu()


def predict(module: nn.Module, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Probabilities ``[n]`` from ``module`` (eager or scripted) on CPU."""
    with torch.inference_mode():
        out = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return np.asarray(out.numpy(), dtype=np.float32).reshape(-1)


def save_torchscript(module: FraudMlp, path: Path) -> None:
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
