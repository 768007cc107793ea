"""Model calls through Triton (``tritonclient.grpc.aio``, one long-lived client).

The model contract: input ``INPUT__0`` FP32 ``[batch, n_features]``, output ``OUTPUT__0`` FP32
``[batch, 1]``. Errors become domain errors: a deadline is ``DeadlineExceeded``, a request the model
rejects (shape, dtype) is ``FailedPrecondition``, anything else (server down, model not loaded) is
``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from aimesh.core.errors import DeadlineExceeded, FailedPrecondition, Unavailable

INPUT_NAME = "INPUT__0"
OUTPUT_NAME = "OUTPUT__0"


class ModelRunner(Protocol):
    """Runs one feature row through a served model and returns its score."""

    async def score(self, model: str, version: int, row: Sequence[float], *, time_left: float | None) -> float: ...


class TritonRunner:
    """``ModelRunner`` over Triton's gRPC API; ``close()`` releases the client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = InferenceServerClient(url=url)

    async def score(self, model: str, version: int, row: Sequence[float], *, time_left: float | None) -> float:
        """Infer one row (FP32 ``[1, n]``); ``version`` 0 means Triton's latest. Blocks at most ``time_left``."""
        x = np.asarray([row], dtype=np.float32)
        infer_input = InferInput(INPUT_NAME, list(x.shape), "FP32")
        infer_input.set_data_from_numpy(x)
        try:
            result = await self._client.infer(
                model,
                [infer_input],
                model_version=str(version) if version > 0 else "",
                outputs=[InferRequestedOutput(OUTPUT_NAME)],
                client_timeout=time_left,
            )
        except InferenceServerException as exc:
            raise _domain_error(model, exc) from exc
        out = result.as_numpy(OUTPUT_NAME)
        if out is None or out.size != 1:
            raise FailedPrecondition(f"Triton model {model!r} returned no single {OUTPUT_NAME} value")
        return float(out.reshape(-1)[0])

    async def check_live(self) -> None:
        """Readiness: Triton answers ``ServerLive``; raises ``Unavailable`` otherwise."""
        try:
            live = await self._client.is_server_live(client_timeout=2.0)
        except InferenceServerException as exc:
            raise Unavailable(f"Triton at {self.url}: {exc}") from exc
        if not live:
            raise Unavailable(f"Triton at {self.url} is not live")

    async def close(self) -> None:
        await self._client.close()


def _domain_error(model: str, exc: InferenceServerException) -> Exception:
    status = exc.status() or ""
    text = f"Triton model {model!r}: {exc.message()}"
    if status.endswith("DEADLINE_EXCEEDED"):
        return DeadlineExceeded(text)
    if status.endswith("INVALID_ARGUMENT"):
        return FailedPrecondition(text)
    return Unavailable(text)
