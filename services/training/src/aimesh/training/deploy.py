"""From a trained run to a served model: register (exporting to the Triton repository), load, verify, promote.

Used by the run pipeline and by the RegisterModel RPC, so both register the same way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition
from aimesh.core.signature import InputEncoder
from aimesh.training.export import directory_owner, export_version
from aimesh.training.model import load_torchscript, predict_outputs
from aimesh.training.outbox import OutboxRelay
from aimesh.training.registry import NewVersion, Registry
from aimesh.training.runs import RunStore, TrainedArtifact
from aimesh.training.triton import OUTPUT_NAME, ModelServer
from aimesh.training.triton_config import TritonVariant

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5
"""Largest allowed |Triton score - TorchScript score| for the same input (``output_diff``)."""


def output_widths(signature: signature_pb2.ModelSignature) -> list[int]:
    """Values per row of each output tensor, in output order: the product of its shape (``[1]`` when none)."""
    return [int(np.prod(list(o.shape) or [1])) for o in signature.outputs] or [1]


def output_tensors(signature: signature_pb2.ModelSignature) -> list[str]:
    """The output tensors in output order (``OUTPUT__0`` when the signature names none)."""
    return [o.tensor for o in signature.outputs] or [OUTPUT_NAME]


def _ranked_diff(served: NDArray[np.float32], expected: NDArray[np.float32], k: int) -> float:
    """Largest score difference between two top-``k`` answers (``[rows, 2k]``: items then scores), per
    position and per item: an item both return must score the same, one only ``expected`` returns must
    score no more than ``served``'s last (items of (near-)equal scores may swap places or fall off)."""
    served_items, served_scores = served[:, :k], served[:, k:]
    expected_items, expected_scores = expected[:, :k], expected[:, k:]
    worst = float(np.max(np.abs(served_scores - expected_scores)))
    for row in range(len(served)):
        by_item = dict(zip(served_items[row].tolist(), served_scores[row].tolist(), strict=True))
        for item, score in zip(expected_items[row].tolist(), expected_scores[row].tolist(), strict=True):
            other = by_item.get(item)
            worst = max(worst, abs(other - score) if other is not None else score - float(served_scores[row, -1]))
    return worst


def output_diff(
    signature: signature_pb2.ModelSignature, served: NDArray[np.float32], expected: NDArray[np.float32]
) -> float:
    """How far Triton's outputs (``served``) are from the TorchScript module's (``expected``), both
    ``[rows, sum of output widths]``: the largest absolute difference, or for a ``TASK_NEXT_ITEM`` model
    the largest score difference of its ranked items (``_ranked_diff``). 0.0 for no rows."""
    if not len(expected):
        return 0.0
    if served.shape != expected.shape:
        return float("inf")
    if signature.task == signature_pb2.TASK_NEXT_ITEM:
        return _ranked_diff(served, expected, output_widths(signature)[0])
    return float(np.max(np.abs(served - expected)))


@dataclass(frozen=True)
class ServingCheck:
    """How loading a version into Triton went."""

    load_seconds: float
    max_abs_diff: float
    infer_seconds: float
    batch_rows: int


class Deployer:
    """Registers run artifacts as versions, exports them to ``model_repository`` (``config.pbtxt`` of
    ``triton_variant``, native variants with ``gpu_instances`` per GPU) and serves them in Triton."""

    def __init__(
        self,
        *,
        runs: RunStore,
        registry: Registry,
        relay: OutboxRelay,
        model_server: ModelServer,
        model_repository: Path,
        triton_variant: TritonVariant = "python",
        gpu_instances: int = 1,
    ) -> None:
        self._runs = runs
        self._registry = registry
        self._relay = relay
        self._server = model_server
        self._repository = model_repository
        self._variant: TritonVariant = triton_variant
        self._gpu_instances = gpu_instances

    async def register(
        self, model_name: str, run_id: str, *, feature_service: str, triton_model_name: str
    ) -> tuple[training_pb2.ModelVersion, bool]:
        """Register ``run_id``'s artifact as the next version of ``model_name``; returns (version, created).

        Idempotent per (model, run). Raises ``FailedPrecondition`` when the run has no artifact yet,
        ``NotFound`` when the run does not exist. The VERSION_REGISTERED event is published before it returns
        (or retried by the relay when Kafka is down).
        """
        artifact = await self._runs.artifact(run_id)
        if artifact is None:
            raise FailedPrecondition(f"run {run_id} has not produced a model yet")
        trained: TrainedArtifact = artifact
        await self.check_triton_owner(model_name, triton_model_name)

        async def export(version: int) -> str:
            exported = await asyncio.to_thread(
                export_version,
                self._repository,
                triton_model_name,
                version,
                trained.path,
                model_name=model_name,
                n_inputs=InputEncoder(trained.signature.inputs).width,
                output_widths=output_widths(trained.signature),
                variant=self._variant,
                gpu_instances=self._gpu_instances,
            )
            return exported.resolve().as_uri()

        version, created = await self._registry.register(
            NewVersion(
                model_name=model_name,
                run_id=run_id,
                features=trained.features,
                feature_service=feature_service,
                metrics=trained.metrics,
                reference_profile=trained.reference_profile,
                triton_model_name=triton_model_name,
                signature=trained.signature,
                input_profiles=trained.input_profiles,
            ),
            export,
        )
        await self._relay.flush_quietly()
        log.info(
            "model version registered",
            extra={"model": model_name, "version": version.version, "model_created": created, "run_id": run_id},
        )
        return version, created

    async def check_triton_owner(self, model_name: str, triton_model_name: str) -> None:
        """``FailedPrecondition`` when Triton model ``triton_model_name`` serves another registered model
        (in the registry, or by the marker in its repository directory)."""
        owner = await self._registry.triton_owner(triton_model_name)
        if owner is None:
            owner = await asyncio.to_thread(directory_owner, self._repository, triton_model_name)
        if owner is not None and owner != model_name:
            raise FailedPrecondition(
                f"Triton model {triton_model_name!r} belongs to model {owner!r}; set spec.triton_model_name to "
                "another name (default: the model name)"
            )

    async def serve(self, version: training_pb2.ModelVersion, sample: NDArray[np.float32]) -> ServingCheck:
        """Load the version into Triton, wait until READY, and check its outputs on ``sample`` against the
        TorchScript file (``output_diff``); raises ``Unavailable`` (Triton) or ``FailedPrecondition`` (they
        differ by more than ``PARITY_TOLERANCE``)."""
        name, number = version.triton_model_name, version.triton_model_version
        load_s = await self._server.load(name)
        await self._server.wait_ready(name, number)
        loop = asyncio.get_running_loop()
        started = loop.time()
        served = await self._server.infer(name, number, sample, output_tensors(version.signature))
        infer_s = loop.time() - started
        module = await asyncio.to_thread(load_torchscript, self._repository / name / str(number) / "model.pt")
        expected = await asyncio.to_thread(predict_outputs, module, sample)
        diff = output_diff(version.signature, served.reshape(len(sample), -1), expected)
        log.info(
            "model version loaded in Triton",
            extra={"triton.model": name, "version": number, "load_s": round(load_s, 3), "max_abs_diff": diff},
        )
        if diff > PARITY_TOLERANCE:
            raise FailedPrecondition(
                f"Triton's scores for {name} v{number} differ from the TorchScript module by {diff:.3g} "
                f"(> {PARITY_TOLERANCE})"
            )
        return ServingCheck(load_seconds=load_s, max_abs_diff=diff, infer_seconds=infer_s, batch_rows=len(sample))

    async def publish_pending(self) -> None:
        """Publish committed registry events now (the relay retries later when Kafka is down)."""
        await self._relay.flush_quietly()

    async def promote(self, version: training_pb2.ModelVersion, alias: str, *, reason: str) -> None:
        """Point ``alias`` at ``version`` (actor ``training``) and publish the ALIAS_CHANGED event."""
        await self._registry.set_alias(version.model_name, alias, version.version, actor="training", reason=reason)
        await self._relay.flush_quietly()
