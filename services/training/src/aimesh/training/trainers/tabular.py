"""The pieces every tabular trainer shares: the input encoder module and the mini-batch training loop.

``TabularEncoder`` turns the signature's input tensor into what a network reads: numeric columns
standardised with the training slice's mean and std, categorical columns (vocabulary indexes, 0 =
unknown) one-hot encoded. It is part of the exported module, so Triton and training see the same
encoding. (No ``from __future__ import annotations`` here: TorchScript reads the annotations.)
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import List  # noqa: UP035 - TorchScript needs typing.List for module attributes

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional

from aimesh.api.common.v1 import common_pb2, signature_pb2
from aimesh.training.trainers.base import Dataset, Fitted, Progress, check_hidden, layer_sizes, number


class TabularEncoder(nn.Module):
    """``x [batch, inputs] -> [batch, width]``: standardised numerics, then one-hot categoricals."""

    numeric_index: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    categorical_index: List[int]  # noqa: UP006
    categorical_sizes: List[int]  # noqa: UP006

    def __init__(self, inputs: Sequence[signature_pb2.SignatureInput], x: NDArray[np.float32]) -> None:
        super().__init__()
        numeric = [j for j, i in enumerate(inputs) if i.kind != signature_pb2.INPUT_KIND_CATEGORICAL]
        columns = x[:, numeric].astype(np.float64) if len(x) else np.zeros((1, len(numeric)))
        mean = columns.mean(axis=0)
        std = columns.std(axis=0)
        std[std < 1e-6] = 1.0
        self.register_buffer("numeric_index", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1))
        self.categorical_index = [j for j, i in enumerate(inputs) if i.kind == signature_pb2.INPUT_KIND_CATEGORICAL]
        self.categorical_sizes = [len(inputs[j].vocabulary) + 1 for j in self.categorical_index]
        self.width = len(numeric) + sum(self.categorical_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [(x.index_select(1, self.numeric_index) - self.mean) / self.std]
        for k in range(len(self.categorical_index)):
            size = self.categorical_sizes[k]
            index = x[:, self.categorical_index[k]].round().long().clamp(0, size - 1)
            parts.append(functional.one_hot(index, size).to(x.dtype))
        return torch.cat(parts, dim=1)


def mlp(width: int, hidden: Sequence[int], out: int) -> nn.Sequential:
    """Linear/ReLU layers of ``hidden`` sizes from ``width`` inputs to ``out`` outputs (no activation after)."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


class BinaryClassifier(nn.Module):
    """``forward(x) = sigmoid(body(encoder(x)))``, ``[batch, 1]``; ``logits`` is what training optimises."""

    def __init__(self, encoder: TabularEncoder, body: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.body = body

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(self.encoder(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class Regressor(nn.Module):
    """``forward(x) = body(encoder(x)) * y_std + y_mean``, ``[batch, 1]``; ``logits`` is the standardised value."""

    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, encoder: TabularEncoder, body: nn.Module, y: NDArray[np.float32]) -> None:
        super().__init__()
        self.encoder = encoder
        self.body = body
        std = float(np.std(y)) if len(y) else 1.0
        self.register_buffer("y_mean", torch.tensor(float(np.mean(y)) if len(y) else 0.0))
        self.register_buffer("y_std", torch.tensor(std if std > 1e-9 else 1.0))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(self.encoder(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x) * self.y_std + self.y_mean


@dataclass(frozen=True)
class LoopParams:
    """Mini-batch Adam settings."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    seed: int


def device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit_loop(
    module: BinaryClassifier | Regressor,
    x: NDArray[np.float32],
    target: NDArray[np.float32],
    loss_fn: nn.Module,
    params: LoopParams,
    *,
    threads: int,
    progress: Progress,
) -> None:
    """Optimise ``loss_fn(module.logits(x), target)`` with Adam; deterministic per seed on CPU.

    Moves ``module`` to CUDA when available for the loop and back to the CPU at the end, in eval mode.
    """
    torch.manual_seed(params.seed)
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(params.seed)
    dev = device()
    module.to(dev)
    loss_fn.to(dev)
    optimiser = torch.optim.Adam(module.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
    ys = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)).reshape(-1, 1).to(dev)
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
        progress(epoch, total / max(len(xs), 1))
    module.eval()
    module.cpu()


def positive_weight(y: NDArray[np.float32]) -> torch.Tensor:
    """BCE weight of the positive class: negatives / positives (1 when there are none)."""
    positives = float(y.sum())
    return torch.tensor([(len(y) - positives) / positives if positives else 1.0])


def loop_params(params: Mapping[str, str]) -> LoopParams:
    """The loop settings from checked trainer parameters (``epochs``, ``batch_size``, ``learning_rate``, ``l2``,
    ``seed``)."""
    return LoopParams(
        epochs=int(float(params["epochs"])),
        batch_size=int(float(params["batch_size"])),
        learning_rate=float(params["learning_rate"]),
        weight_decay=float(params["l2"]),
        seed=int(float(params["seed"])),
    )


def check_loop_params(params: Mapping[str, str]) -> None:
    """``InvalidArgument`` naming the first unusable loop parameter."""
    number(params, "epochs", 1, 1000)
    number(params, "batch_size", 1, 1_000_000)
    number(params, "learning_rate", 1e-6, 1.0)
    number(params, "l2", 0.0, 1.0)
    number(params, "seed", 0, 2**31)


def score_output(meaning: str) -> signature_pb2.SignatureOutput:
    """The single ``score`` output (``OUTPUT__0``, FP32 ``[1]``) every tabular trainer returns."""
    return signature_pb2.SignatureOutput(
        name="score", tensor="OUTPUT__0", dtype=common_pb2.VALUE_TYPE_DOUBLE, shape=[1], meaning=meaning
    )


BodyFactory = Callable[[int, Mapping[str, str]], nn.Module]
"""Builds the network after the encoder from its input width and the checked parameters."""


@dataclass(frozen=True)
class TabularTrainer:
    """A ``Trainer`` over ``TabularEncoder`` + a body: a binary classifier (BCE weighted by class balance) or
    a regressor (MSE on the standardised target)."""

    name: str
    task: signature_pb2.Task
    defaults: Mapping[str, str]
    body: BodyFactory
    check_extra: Callable[[Mapping[str, str]], None] = lambda params: None

    def check(self, params: Mapping[str, str]) -> None:
        check_loop_params(params)
        self.check_extra(params)

    def fit(self, data: Dataset, params: Mapping[str, str], *, threads: int, progress: Progress) -> Fitted:
        torch.manual_seed(int(float(params["seed"])))
        encoder = TabularEncoder(data.inputs, data.x_train)
        body = self.body(encoder.width, params)
        module: BinaryClassifier | Regressor
        if self.task == signature_pb2.TASK_BINARY_CLASSIFICATION:
            module = BinaryClassifier(encoder, body)
            loss: nn.Module = nn.BCEWithLogitsLoss(pos_weight=positive_weight(data.y_train))
            target = data.y_train
            meaning = "P(label is positive)"
        else:
            module = Regressor(encoder, body, data.y_train)
            loss = nn.MSELoss()
            target = (data.y_train - float(module.y_mean)) / float(module.y_std)
            meaning = "predicted label value"
        fit_loop(module, data.x_train, target, loss, loop_params(params), threads=threads, progress=progress)
        return Fitted(module=module, outputs=(score_output(meaning),))


def mlp_trainer(name: str, task: signature_pb2.Task, *, epochs: int) -> TabularTrainer:
    """A ``TabularTrainer`` of ReLU hidden layers (param ``hidden``, "32,16") with one output, for ``task``.

    Shared by ``mlp_classifier`` and ``mlp_regressor``: defaults ``epochs`` (given), ``batch_size`` 256,
    ``learning_rate`` 0.003, ``l2`` 0, ``hidden`` "32,16", ``seed`` 7.
    """
    return TabularTrainer(
        name=name,
        task=task,
        defaults={
            "epochs": str(epochs),
            "batch_size": "256",
            "learning_rate": "0.003",
            "l2": "0",
            "hidden": "32,16",
            "seed": "7",
        },
        body=lambda width, params: mlp(width, layer_sizes(params, "hidden"), 1),
        check_extra=check_hidden,
    )
