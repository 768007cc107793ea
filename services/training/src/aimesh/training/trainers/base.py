"""The trainer plug-in seam: a dataset in, a fitted TorchScript-able module, its outputs and metrics out.

A trainer is one module in this package with one ``Trainer`` object (registered in ``__init__``). It
never reads the lake or the network: the pipeline gives it encoded FP32 matrices (categorical columns
hold vocabulary indexes, see ``aimesh.core.signature``) and the signature inputs that describe them;
it returns a module whose ``forward(x [batch, len(inputs)])`` is what Triton serves, plus the outputs
the signature records. ``fit`` blocks (CPU or CUDA work): call it from a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from torch import nn

from aimesh.api.common.v1 import signature_pb2
from aimesh.core.errors import InvalidArgument

Progress = Callable[[int, float], None]
"""Called as ``progress(epoch, mean_loss)`` after each epoch."""
RankScores = Callable[[NDArray[np.float32]], NDArray[np.float32]]
"""``scores(x [rows, width]) -> [rows, classes]``: a ranking model's score of every class (column ``c`` for
vocabulary index ``c``; column 0, padding, is ``-inf``), higher is better; what the ranking evaluation ranks."""


@dataclass(frozen=True)
class Dataset:
    """Encoded training and evaluation slices, in the column order of ``inputs``."""

    inputs: tuple[signature_pb2.SignatureInput, ...]
    x_train: NDArray[np.float32]
    y_train: NDArray[np.float32]
    x_eval: NDArray[np.float32]
    y_eval: NDArray[np.float32]


@dataclass(frozen=True)
class Fitted:
    """What a trainer returns: the module to export and the outputs its ``forward`` returns, in order (one
    tensor, or a tuple of tensors, one per output)."""

    module: nn.Module
    outputs: tuple[signature_pb2.SignatureOutput, ...]
    rank_scores: RankScores | None = None
    """``TASK_NEXT_ITEM`` trainers: the full scores the evaluation ranks (the module only returns its top-k)."""


class Trainer(Protocol):
    """One way to fit a model (see the module doc)."""

    @property
    def name(self) -> str:
        """The name ``RunSpec.trainer`` selects it by."""
        ...

    @property
    def task(self) -> signature_pb2.Task:
        """What its models predict; the run's label kind must match."""
        ...

    @property
    def defaults(self) -> Mapping[str, str]:
        """Every parameter it takes, with its default (``RunSpec.params`` may override any of them)."""
        ...

    def check(self, params: Mapping[str, str]) -> None:
        """Raise ``InvalidArgument`` naming the parameter when a value is unusable."""
        ...

    def fit(self, data: Dataset, params: Mapping[str, str], *, threads: int, progress: Progress) -> Fitted:
        """Fit on ``data.x_train``/``y_train``; blocks for the whole training."""
        ...


def number(params: Mapping[str, str], name: str, low: float, high: float) -> float:
    """``params[name]`` as a float in ``[low, high]``; ``InvalidArgument`` naming it otherwise."""
    raw = params[name]
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"spec.params[{name!r}] = {raw!r} is not a number") from None
    if not low <= value <= high:
        raise InvalidArgument(f"spec.params[{name!r}] = {raw} is outside [{low:g}, {high:g}]")
    return value


def layer_sizes(params: Mapping[str, str], name: str) -> tuple[int, ...]:
    """``params[name]`` as comma-separated hidden layer sizes (1-4096 each, at least one)."""
    raw = params[name]
    parts = [p.strip() for p in raw.split(",")]
    if not parts or not all(p.isdigit() and 0 < int(p) <= 4096 for p in parts):
        raise InvalidArgument(f"spec.params[{name!r}] = {raw!r} must be layer sizes like '32,16'")
    return tuple(int(p) for p in parts)


def check_hidden(params: Mapping[str, str]) -> None:
    """``InvalidArgument`` when ``params['hidden']`` is not a list of layer sizes."""
    layer_sizes(params, "hidden")
