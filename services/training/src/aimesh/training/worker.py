"""Runs queued training runs one at a time, in the service's event loop.

``start`` records a QUEUED run (idempotent per key) and hands it to the worker; ``run`` (a runtime
part) executes them in order and always ends each in SUCCEEDED, FAILED (with the reason) or CANCELLED
(service shutdown), never letting a run's error escape into the service. On start-up, runs a crash
left RUNNING are failed and QUEUED ones are resumed.
"""

from __future__ import annotations

import asyncio
import logging

from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import AimeshError
from aimesh.training.outbox import OutboxRelay
from aimesh.training.pipeline import TrainingPipeline
from aimesh.training.runs import RunStore

log = logging.getLogger(__name__)


class RunWorker:
    """The run queue and its single worker (training is CPU-heavy; one run at a time)."""

    def __init__(self, runs: RunStore, pipeline: TrainingPipeline, relay: OutboxRelay) -> None:
        self._runs = runs
        self._pipeline = pipeline
        self._relay = relay
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._stopping = asyncio.Event()

    async def start(
        self, spec: training_pb2.RunSpec, *, idempotency_key: str = "", trigger: str = "manual"
    ) -> training_pb2.Run:
        """Validate ``spec`` (``InvalidArgument``, ``NotFound``, ``FailedPrecondition``: see
        ``TrainingPipeline.validate``), record the run and queue it; returns the new or existing run."""
        await self._pipeline.validate(spec)
        run, created = await self._runs.create(spec, idempotency_key=idempotency_key, trigger=trigger or "manual")
        if created:
            self._relay.wake()
            self._queue.put_nowait(run.run_id)
            log.info("run queued", extra={"run_id": run.run_id, "model": spec.model_name, "trigger": run.trigger})
        return run

    async def run(self) -> None:
        """Resume what a previous process left, then execute queued runs until ``stop()``."""
        for run_id in await self._runs.recover():
            self._queue.put_nowait(run_id)
        while not self._stopping.is_set():
            getter = asyncio.ensure_future(self._queue.get())
            stopper = asyncio.ensure_future(self._stopping.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return
            run_id = getter.result()
            try:
                await self._execute(run_id)
            except Exception:
                log.exception("recording the outcome of run %s failed; a restart marks it FAILED", run_id)
            self._relay.wake()

    async def stop(self) -> None:
        self._stopping.set()

    async def _execute(self, run_id: str) -> None:
        run = await self._runs.set_status(run_id, training_pb2.RUN_STATUS_RUNNING, message="training started")
        self._relay.wake()
        log.info("run started", extra={"run_id": run_id, "model": run.spec.model_name})
        try:
            outcome = await self._pipeline.execute(run)
        except asyncio.CancelledError:
            await asyncio.shield(
                self._runs.set_status(run_id, training_pb2.RUN_STATUS_CANCELLED, message="service shutting down")
            )
            raise
        except AimeshError as exc:
            log.warning("run failed", extra={"run_id": run_id, "reason": exc.message})
            await self._fail(run_id, exc.message)
        except Exception as exc:
            log.exception("run failed unexpectedly", extra={"run_id": run_id})
            await self._fail(run_id, f"{type(exc).__name__}: {exc}")
        else:
            await self._runs.set_status(
                run_id,
                training_pb2.RUN_STATUS_SUCCEEDED,
                message=outcome.message,
                metrics=outcome.metrics,
                model_version=outcome.model_version,
            )
            log.info("run succeeded", extra={"run_id": run_id, "message": outcome.message})

    async def _fail(self, run_id: str, reason: str) -> None:
        await self._runs.set_status(run_id, training_pb2.RUN_STATUS_FAILED, message=reason)
