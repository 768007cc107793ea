"""The body of one training run: lake -> labels -> point-in-time features -> train -> evaluate -> artifact
-> (register, export, load in Triton, promote).

``TrainingPipeline.execute`` blocks the calling task for the whole run (heavy work goes to threads)
and raises a domain error (``FailedPrecondition``, ``Unavailable``, ``NotFound`` ...) naming what went
wrong; the worker turns that into a FAILED run. Progress goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import numpy as np

from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition
from aimesh.training import dataset, evaluation, model
from aimesh.training.deploy import Deployer
from aimesh.training.features import FeatureClient
from aimesh.training.params import RunParams, parse
from aimesh.training.runs import RunStore, TrainedArtifact

log = logging.getLogger(__name__)

PARITY_SAMPLE_ROWS = 256


@dataclass(frozen=True)
class PipelineConfig:
    """Service-level choices the pipeline applies to every run."""

    lake_root: Path
    artifacts_dir: Path
    default_triton_name: str
    champion_alias: str
    champion_auc_floor: float
    torch_threads: int


@dataclass(frozen=True)
class Outcome:
    """What a finished run reports."""

    metrics: dict[str, float]
    model_version: int
    message: str


class TrainingPipeline:
    """Runs one training run end to end (see module doc)."""

    def __init__(self, config: PipelineConfig, *, features: FeatureClient, runs: RunStore, deployer: Deployer) -> None:
        self._config = config
        self._features = features
        self._runs = runs
        self._deployer = deployer

    def params(self, spec: training_pb2.RunSpec) -> RunParams:
        """Validated parameters of ``spec``; ``InvalidArgument`` when it is not runnable."""
        return parse(spec, default_triton_name=self._config.default_triton_name, threads=self._config.torch_threads)

    async def execute(self, run: training_pb2.Run) -> Outcome:
        spec = run.spec
        params = self.params(spec)
        ctx = {"run_id": run.run_id, "model": spec.model_name}
        examples = await asyncio.to_thread(
            dataset.load_examples,
            self._config.lake_root,
            events_source=params.events_source,
            labels=params.labels,
            maturity=params.label_maturity,
            start=spec.train_start.ToDatetime(tzinfo=UTC) if spec.HasField("train_start") else None,
            end=spec.train_end.ToDatetime(tzinfo=UTC) if spec.HasField("train_end") else None,
        )
        n, positives = len(examples.rows), int(examples.labels.sum())
        log.info(
            "run: examples loaded",
            extra={**ctx, "rows": n, "positives": positives, "cutoff": examples.cutoff.isoformat()},
        )
        if n < params.min_rows:
            raise FailedPrecondition(f"only {n} mature payments (min_rows={params.min_rows})")

        started = time.perf_counter()
        matrix = await self._features.historical(spec.feature_service, examples.rows)
        log.info(
            "run: features retrieved",
            extra={
                **ctx,
                "features": len(matrix.names),
                "missing": matrix.missing,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

        split = dataset.time_split(examples.times_us, params.train_fraction)
        x_train, y_train = matrix.values[:split], examples.labels[:split]
        x_eval, y_eval = matrix.values[split:], examples.labels[split:]
        for name, labels in (("train", y_train), ("eval", y_eval)):
            if int(labels.sum()) < params.min_positives:
                raise FailedPrecondition(
                    f"the {name} slice has {int(labels.sum())} fraud labels (min_positives={params.min_positives})"
                )

        def progress(epoch: int, loss: float) -> None:
            log.info("run: epoch done", extra={**ctx, "epoch": epoch, "of": params.train.epochs, "loss": loss})

        started = time.perf_counter()
        module = await asyncio.to_thread(model.train_mlp, x_train, y_train, params.train, progress)
        train_seconds = time.perf_counter() - started

        scores = await asyncio.to_thread(model.predict, module, x_eval)
        at_threshold = evaluation.precision_recall(y_eval, scores, params.threshold)
        metrics = {
            "auc": evaluation.roc_auc(y_eval, scores),
            "train_auc": evaluation.roc_auc(y_train, await asyncio.to_thread(model.predict, module, x_train)),
            "precision": at_threshold.precision,
            "recall": at_threshold.recall,
            "threshold": params.threshold,
            "train_rows": float(len(y_train)),
            "eval_rows": float(len(y_eval)),
            "train_positives": float(y_train.sum()),
            "eval_positives": float(y_eval.sum()),
            "feature_missing_values": float(matrix.missing),
            "train_seconds": train_seconds,
        }
        log.info("run: evaluated", extra={**ctx, **metrics})

        path = self._config.artifacts_dir / run.run_id / "model.pt"
        await asyncio.to_thread(model.save_torchscript, module, path)
        await self._runs.save_artifact(
            run.run_id,
            TrainedArtifact(
                path=path, features=matrix.names, metrics=metrics, reference_profile=evaluation.score_profile(scores)
            ),
        )
        if not spec.register_model:
            return Outcome(metrics=metrics, model_version=0, message="trained; not registered (register_model unset)")

        version, _ = await self._deployer.register(
            spec.model_name,
            run.run_id,
            feature_service=spec.feature_service,
            triton_model_name=params.triton_model_name,
        )
        check = await self._deployer.serve(version, np.ascontiguousarray(x_eval[:PARITY_SAMPLE_ROWS]))
        metrics |= {
            "triton_load_seconds": check.load_seconds,
            "triton_max_abs_diff": check.max_abs_diff,
            "triton_infer_seconds": check.infer_seconds,
        }
        floor = self._config.champion_auc_floor
        alias = self._config.champion_alias
        if metrics["auc"] > floor:
            await self._deployer.promote(version, alias, reason=f"run {run.run_id}: eval AUC {metrics['auc']:.4f}")
            message = f"version {version.version} is {alias} (eval AUC {metrics['auc']:.4f} > floor {floor})"
        else:
            message = (
                f"version {version.version} registered without alias {alias}: eval AUC {metrics['auc']:.4f} "
                f"is not above the floor {floor}"
            )
        log.info("run: " + message, extra=ctx)
        return Outcome(metrics=metrics, model_version=version.version, message=message)
