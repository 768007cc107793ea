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
from aimesh.training.export import directory_owner, export_version
from aimesh.training.model import load_torchscript, predict
from aimesh.training.outbox import OutboxRelay
from aimesh.training.registry import NewVersion, Registry
from aimesh.training.runs import RunStore, TrainedArtifact
from aimesh.training.triton import ModelServer

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5
"""Largest allowed |Triton score - TorchScript score| for the same input."""


def outputs_width(signature: signature_pb2.ModelSignature) -> int:
    """Values per row of the (single) output tensor: the product of the first output's shape (1 when none)."""
    if not signature.outputs:
        return 1
    return int(np.prod(list(signature.outputs[0].shape) or [1]))


@dataclass(frozen=True)
class ServingCheck:
    """How loading a version into Triton went."""

    load_seconds: float
    max_abs_diff: float
    infer_seconds: float
    batch_rows: int


class Deployer:
    """Registers run artifacts as versions, exports them to ``model_repository`` and serves them in Triton."""

    def __init__(
        self,
        *,
        runs: RunStore,
        registry: Registry,
        relay: OutboxRelay,
        model_server: ModelServer,
        model_repository: Path,
    ) -> None:
        self._runs = runs
        self._registry = registry
        self._relay = relay
        self._server = model_server
        self._repository = model_repository

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
                n_inputs=len(trained.signature.inputs),
                n_outputs=outputs_width(trained.signature),
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
        """Load the version into Triton, wait until READY, and check its scores on ``sample`` against the
        TorchScript file; raises ``Unavailable`` (Triton) or ``FailedPrecondition`` (scores differ)."""
        name, number = version.triton_model_name, version.triton_model_version
        load_s = await self._server.load(name)
        await self._server.wait_ready(name, number)
        loop = asyncio.get_running_loop()
        started = loop.time()
        served = (await self._server.infer(name, number, sample)).reshape(-1)
        infer_s = loop.time() - started
        module = await asyncio.to_thread(load_torchscript, self._repository / name / str(number) / "model.pt")
        expected = await asyncio.to_thread(predict, module, sample)
        diff = float(np.max(np.abs(served - expected))) if len(sample) else 0.0
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
