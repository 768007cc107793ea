"""Triton's model-control and inference API (gRPC, ``tritonclient.grpc.aio``) behind a small interface.

Every method raises ``Unavailable`` when Triton does not answer or refuses, naming the model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from aimesh.core.errors import Unavailable

INPUT_NAME = "INPUT__0"
OUTPUT_NAME = "OUTPUT__0"


class ModelServer(Protocol):
    """What training needs of Triton: load a model, check a version, score a batch."""

    async def load(self, name: str) -> float:
        """(Re)load ``name`` from the repository; returns the seconds it took."""
        ...

    async def is_ready(self, name: str, version: int) -> bool:
        """Whether ``name`` version ``version`` is loaded and READY (False for an unknown or unloaded model)."""
        ...

    async def wait_ready(self, name: str, version: int, within_s: float = 60.0) -> None:
        """Return when ``name`` version ``version`` is READY; raise ``Unavailable`` after ``within_s``."""
        ...

    async def infer(
        self, name: str, version: int, x: NDArray[np.float32], outputs: Sequence[str] = (OUTPUT_NAME,)
    ) -> NDArray[np.float32]:
        """The ``outputs`` of ``name``/``version`` for the batch ``x``, side by side: ``[rows, sum of widths]``."""
        ...


class TritonModelServer:
    """``ModelServer`` over Triton gRPC at ``target``; ``timeout_s`` bounds loads, 30 s other calls."""

    def __init__(self, target: str, *, timeout_s: float = 180.0) -> None:
        self._target = target
        self._timeout_s = timeout_s

    async def load(self, name: str) -> float:
        started = time.perf_counter()
        async with InferenceServerClient(url=self._target) as client:
            try:
                await client.load_model(name, client_timeout=self._timeout_s)
            except InferenceServerException as exc:
                raise Unavailable(f"Triton at {self._target} could not load {name!r}: {exc}") from exc
        return time.perf_counter() - started

    async def is_ready(self, name: str, version: int) -> bool:
        async with InferenceServerClient(url=self._target) as client:
            try:
                return bool(await client.is_model_ready(name, str(version), client_timeout=5.0))
            except InferenceServerException as exc:
                raise Unavailable(f"Triton at {self._target}: is {name!r} v{version} ready? {exc}") from exc

    async def wait_ready(self, name: str, version: int, within_s: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        async with InferenceServerClient(url=self._target) as client:
            while True:
                try:
                    if await client.is_model_ready(name, str(version), client_timeout=5.0):
                        return
                except InferenceServerException as exc:
                    if loop.time() > deadline:
                        raise Unavailable(f"Triton at {self._target}: {name!r} v{version}: {exc}") from exc
                if loop.time() > deadline:
                    raise Unavailable(f"{name!r} v{version} is not READY in Triton after {within_s}s")
                await asyncio.sleep(0.25)

    async def infer(
        self, name: str, version: int, x: NDArray[np.float32], outputs: Sequence[str] = (OUTPUT_NAME,)
    ) -> NDArray[np.float32]:
        batch = np.ascontiguousarray(x, dtype=np.float32)
        request = InferInput(INPUT_NAME, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        async with InferenceServerClient(url=self._target) as client:
            try:
                result = await client.infer(
                    name,
                    [request],
                    model_version=str(version),
                    outputs=[InferRequestedOutput(o) for o in outputs],
                    client_timeout=30.0,
                )
            except InferenceServerException as exc:
                raise Unavailable(f"Triton at {self._target} failed to score {name!r} v{version}: {exc}") from exc
        parts = []
        for output in outputs:
            out = result.as_numpy(output)
            if out is None:
                raise Unavailable(f"{name!r} v{version} returned no {output}")
            parts.append(np.asarray(out, dtype=np.float32).reshape(len(batch), -1))
        return np.concatenate(parts, axis=1)
