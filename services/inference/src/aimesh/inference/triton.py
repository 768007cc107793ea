"""Model calls through Triton (``tritonclient.grpc.aio``, one long-lived client).

The model contract comes from the version's signature: one FP32 input tensor ``[batch, n_inputs]``
(``ModelSignature.input_tensor``) and one output tensor per ``SignatureOutput.tensor``, each numeric.
Errors become domain errors: a deadline is ``DeadlineExceeded``, a request the model rejects (shape,
dtype, an output it does not have) or a missing or non-numeric output is ``FailedPrecondition``,
anything else (server down, model not loaded) is ``Unavailable``.

The client's channel takes ``aimesh.core.channels.channel_options`` (reconnect within about a second
of a restarted Triton's return, keepalive while calls run). ``TritonRunner`` is also the reconciler's
``ModelControl``: ``is_model_ready`` and ``load_model`` (Triton runs in explicit model-control mode, so
a model is served only after a load request; a restarted Triton serves nothing until then).
Each ``infer`` runs in a CLIENT span ``triton infer <model>`` whose W3C context travels in the request's
headers (a Triton started with OpenTelemetry tracing continues it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from opentelemetry.trace import SpanKind
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from aimesh.core.channels import channel_options
from aimesh.core.errors import DeadlineExceeded, FailedPrecondition, Unavailable
from aimesh.core.tracing import inject_headers, tracer

_tracer = tracer(__name__)


class ModelRunner(Protocol):
    """Runs input rows through a served model in one call and returns the values of the outputs asked for."""

    async def infer(
        self,
        model: str,
        version: int,
        rows: Sequence[Sequence[float]],
        *,
        input_tensor: str,
        outputs: Sequence[str],
        time_left: float | None,
    ) -> list[dict[str, list[float]]]:
        """Per row of ``rows`` (in order), the values of each tensor in ``outputs`` (row-major, the batch
        dimension dropped)."""
        ...


class TritonRunner:
    """``ModelRunner`` over Triton's gRPC API; ``close()`` releases the client."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = InferenceServerClient(url=url, channel_args=channel_options())
        self._outputs: dict[tuple[str, ...], list[InferRequestedOutput]] = {}

    async def infer(
        self,
        model: str,
        version: int,
        rows: Sequence[Sequence[float]],
        *,
        input_tensor: str,
        outputs: Sequence[str],
        time_left: float | None,
    ) -> list[dict[str, list[float]]]:
        """Infer ``rows`` as one FP32 ``[len(rows), n]`` request; ``version`` 0 means Triton's latest. Blocks
        at most ``time_left``."""
        x = np.asarray(rows, dtype=np.float32)
        infer_input = InferInput(input_tensor, list(x.shape), "FP32")
        infer_input.set_data_from_numpy(x)
        tensors = list(dict.fromkeys(outputs))
        with _tracer.start_as_current_span(
            f"triton infer {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "grpc",
                "rpc.method": "/inference.GRPCInferenceService/ModelInfer",
                "aimesh.model.name": model,
                "aimesh.model.version": version,
                "aimesh.model.rows": len(x),
            },
        ):
            try:
                result = await self._client.infer(
                    model,
                    [infer_input],
                    model_version=str(version) if version > 0 else "",
                    outputs=self._requested(tuple(tensors)),
                    client_timeout=time_left,
                    headers=inject_headers(),
                )
            except InferenceServerException as exc:
                raise _domain_error(model, exc) from exc
        per_row: list[dict[str, list[float]]] = [{} for _ in range(len(x))]
        for name in tensors:
            out = result.as_numpy(name)
            if out is None or out.dtype.kind not in "biuf":
                kind = "nothing" if out is None else f"dtype {out.dtype}"
                raise FailedPrecondition(f"Triton model {model!r} returned {kind} for output {name!r}")
            if not out.shape or out.shape[0] != len(x):
                raise FailedPrecondition(
                    f"Triton model {model!r} returned {list(out.shape)} for output {name!r} from {len(x)} rows"
                )
            for values, row_out in zip(per_row, out.reshape(len(x), -1).astype(np.float64).tolist(), strict=True):
                values[name] = row_out
        return per_row

    def _requested(self, tensors: tuple[str, ...]) -> list[InferRequestedOutput]:
        """The (immutable, reused) requested-output list of ``tensors``."""
        found = self._outputs.get(tensors)
        if found is None:
            found = self._outputs[tensors] = [InferRequestedOutput(name) for name in tensors]
        return found

    async def check_live(self) -> None:
        """Readiness: Triton answers ``ServerLive``; raises ``Unavailable`` otherwise."""
        try:
            live = await self._client.is_server_live(client_timeout=2.0)
        except InferenceServerException as exc:
            raise Unavailable(f"Triton at {self.url}: {exc}") from exc
        if not live:
            raise Unavailable(f"Triton at {self.url} is not live")

    async def is_model_ready(self, model: str, version: int, *, timeout_s: float) -> bool:
        """Whether Triton serves ``model`` version ``version`` (0: its latest) now; False for an unknown or
        unloaded model. Raises ``Unavailable`` when Triton does not answer within ``timeout_s``."""
        try:
            ready = await self._client.is_model_ready(
                model, str(version) if version > 0 else "", client_timeout=timeout_s
            )
        except InferenceServerException as exc:
            raise Unavailable(f"Triton at {self.url}: {exc.message()}") from exc
        return bool(ready)

    async def load_model(self, model: str, *, timeout_s: float) -> None:
        """Ask Triton to load ``model`` from its repository (the versions its config's version policy
        keeps); returns when the load finished. Raises ``Unavailable`` with Triton's reason when the load
        fails or takes longer than ``timeout_s``."""
        try:
            await self._client.load_model(model, client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise Unavailable(f"Triton at {self.url} could not load {model!r}: {exc.message()}") from exc

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
