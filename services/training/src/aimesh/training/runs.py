"""Run records in SQL: creation (idempotent per key), status changes with their RunEvents, results.

Every status change commits the row and its RunEvent (to the runs topic, through the outbox) in one
transaction, so the event is published after the commit and never lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.errors import NotFound
from aimesh.training import input_profiles
from aimesh.training.outbox import enqueue
from aimesh.training.paging import Page, timestamp
from aimesh.training.schema import runs

FINISHED = frozenset(
    {training_pb2.RUN_STATUS_SUCCEEDED, training_pb2.RUN_STATUS_FAILED, training_pb2.RUN_STATUS_CANCELLED}
)


@dataclass(frozen=True)
class TrainedArtifact:
    """What a run produced before registration: the TorchScript file and what the registry records."""

    path: Path
    features: list[str]
    metrics: dict[str, float]
    reference_profile: training_pb2.ScoreProfile
    signature: signature_pb2.ModelSignature
    input_profiles: tuple[training_pb2.FeatureProfile, ...] = ()


def _run_message(row: Any) -> training_pb2.Run:
    spec = training_pb2.RunSpec()
    spec.ParseFromString(row.spec)
    return training_pb2.Run(
        run_id=row.run_id,
        spec=spec,
        status=row.status,
        metrics={str(k): float(v) for k, v in row.metrics.items()},
        create_time=timestamp(row.create_time),
        start_time=timestamp(row.start_time),
        end_time=timestamp(row.end_time),
        error_message=row.error_message,
        model_version=row.model_version,
        trigger=row.trigger,
    )


class RunStore:
    """Runs in the database behind ``engine``; RunEvents to ``topic``."""

    def __init__(self, engine: AsyncEngine, *, topic: str) -> None:
        self._engine = engine
        self._topic = topic

    async def create(
        self, spec: training_pb2.RunSpec, *, idempotency_key: str, trigger: str
    ) -> tuple[training_pb2.Run, bool]:
        """A new QUEUED run, or the existing one for ``idempotency_key``; returns (run, created)."""
        if idempotency_key:
            existing = await self._by_key(idempotency_key)
            if existing is not None:
                return existing, False
        run_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    runs.insert().values(
                        run_id=run_id,
                        idempotency_key=idempotency_key or None,
                        model_name=spec.model_name,
                        status=training_pb2.RUN_STATUS_QUEUED,
                        spec=spec.SerializeToString(),
                        trigger=trigger,
                        metrics={},
                        error_message="",
                        model_version=0,
                        create_time=now,
                    )
                )
                run = await self._load(conn, run_id)
                await self._announce(conn, run, "queued")
        except IntegrityError:
            raced = await self._by_key(idempotency_key)
            if raced is None:
                raise
            return raced, False
        return run, True

    async def _by_key(self, key: str) -> training_pb2.Run | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(runs).where(runs.c.idempotency_key == key))).one_or_none()
        return None if row is None else _run_message(row)

    async def _load(self, conn: AsyncConnection, run_id: str) -> training_pb2.Run:
        row = (await conn.execute(select(runs).where(runs.c.run_id == run_id))).one_or_none()
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist")
        return _run_message(row)

    async def _announce(self, conn: AsyncConnection, run: training_pb2.Run, message: str) -> None:
        event = events_pb2.RunEvent(
            run_id=run.run_id,
            model_name=run.spec.model_name,
            status=run.status,
            metrics=dict(run.metrics),
            time=timestamp(datetime.now(UTC)),
            message=message,
            model_version=run.model_version,
            trigger=run.trigger,
        )
        name = training_pb2.RunStatus.Name(run.status)
        await enqueue(conn, topic=self._topic, key=run.run_id, message=event, event_id=f"run/{run.run_id}/{name}")

    async def get(self, run_id: str) -> training_pb2.Run:
        """One run; ``NotFound`` when absent."""
        async with self._engine.connect() as conn:
            return await self._load(conn, run_id)

    async def list_runs(
        self, page: Page, *, model_name: str = "", status: training_pb2.RunStatus = training_pb2.RUN_STATUS_UNSPECIFIED
    ) -> list[training_pb2.Run]:
        """Runs newest first, filtered, ``page.limit + 1`` at most."""
        query = select(runs)
        if model_name:
            query = query.where(runs.c.model_name == model_name)
        if status:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.create_time.desc(), runs.c.run_id).offset(page.offset).limit(page.limit + 1)
        async with self._engine.connect() as conn:
            return [_run_message(r) for r in (await conn.execute(query)).all()]

    async def set_status(
        self,
        run_id: str,
        status: training_pb2.RunStatus,
        *,
        message: str = "",
        metrics: dict[str, float] | None = None,
        model_version: int | None = None,
    ) -> training_pb2.Run:
        """Move the run to ``status`` (start/end times follow) and announce it; returns the updated run."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": status}
        if status == training_pb2.RUN_STATUS_RUNNING:
            values["start_time"] = now
        if status in FINISHED:
            values["end_time"] = now
        if status == training_pb2.RUN_STATUS_FAILED:
            values["error_message"] = message
        if metrics is not None:
            values["metrics"] = metrics
        if model_version is not None:
            values["model_version"] = model_version
        async with self._engine.begin() as conn:
            await conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))
            run = await self._load(conn, run_id)
            await self._announce(conn, run, message)
        return run

    async def save_artifact(self, run_id: str, artifact: TrainedArtifact) -> None:
        """Record the trained artifact and the run's metrics (no status change)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(
                    artifact_path=str(artifact.path),
                    features=list(artifact.features),
                    metrics=dict(artifact.metrics),
                    reference_profile=artifact.reference_profile.SerializeToString(),
                    signature=artifact.signature.SerializeToString(),
                    input_profiles=input_profiles.to_bytes(artifact.input_profiles),
                )
            )

    async def artifact(self, run_id: str) -> TrainedArtifact | None:
        """The run's trained artifact, or None when training has not produced one (``NotFound``: no run)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(runs).where(runs.c.run_id == run_id))).one_or_none()
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist")
        if row.artifact_path is None or row.reference_profile is None:
            return None
        profile = training_pb2.ScoreProfile()
        profile.ParseFromString(row.reference_profile)
        signature = signature_pb2.ModelSignature()
        signature.ParseFromString(row.signature or b"")
        return TrainedArtifact(
            path=Path(row.artifact_path),
            features=list(row.features or []),
            metrics={str(k): float(v) for k, v in row.metrics.items()},
            reference_profile=profile,
            signature=signature,
            input_profiles=tuple(input_profiles.from_bytes(row.input_profiles)),
        )

    async def recover(self) -> list[str]:
        """After a restart: fail runs left RUNNING (their worker died) and return the QUEUED run ids, oldest first."""
        async with self._engine.connect() as conn:
            running = (
                await conn.execute(select(runs.c.run_id).where(runs.c.status == training_pb2.RUN_STATUS_RUNNING))
            ).all()
            queued = (
                await conn.execute(
                    select(runs.c.run_id)
                    .where(runs.c.status == training_pb2.RUN_STATUS_QUEUED)
                    .order_by(runs.c.create_time)
                )
            ).all()
        for row in running:
            await self.set_status(
                row.run_id, training_pb2.RUN_STATUS_FAILED, message="the training service restarted during the run"
            )
        return [r.run_id for r in queued]

    async def latest_spec(self, model_name: str) -> training_pb2.RunSpec | None:
        """The spec of the model's newest SUCCEEDED run (what a retrain repeats), or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(runs.c.spec)
                    .where(runs.c.model_name == model_name, runs.c.status == training_pb2.RUN_STATUS_SUCCEEDED)
                    .order_by(runs.c.create_time.desc())
                    .limit(1)
                )
            ).one_or_none()
        if row is None:
            return None
        spec = training_pb2.RunSpec()
        spec.ParseFromString(row.spec)
        return spec
