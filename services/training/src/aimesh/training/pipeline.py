"""The body of one training run: lake rows -> labels -> point-in-time features -> signature and encoding ->
trainer -> evaluate -> artifact -> (register, export, load in Triton with a parity check, promote).

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
from numpy.typing import NDArray

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import FailedPrecondition
from aimesh.core.signature import InputEncoder, infer_inputs
from aimesh.training import dataset, evaluation, input_profiles, model, next_item
from aimesh.training.deploy import Deployer
from aimesh.training.features import FeatureClient, check_feature_service, entity_rows
from aimesh.training.runs import RunStore, TrainedArtifact
from aimesh.training.spec import RunPlan, check_lake, check_spec
from aimesh.training.trainers.base import Dataset

log = logging.getLogger(__name__)

PARITY_SAMPLE_ROWS = 256


@dataclass(frozen=True)
class PipelineConfig:
    """Service-level choices the pipeline applies to every run."""

    lake_root: Path
    artifacts_dir: Path
    champion_alias: str
    champion_auc_floor: float
    torch_threads: int


@dataclass(frozen=True)
class Outcome:
    """What a finished run reports."""

    metrics: dict[str, float]
    model_version: int
    message: str


def signature_of(
    plan: RunPlan,
    rows: dataset.Rows,
    inputs: list[signature_pb2.SignatureInput],
    outputs: list[signature_pb2.SignatureOutput],
    *,
    train_targets: list[str] | None = None,
) -> signature_pb2.ModelSignature:
    """The signature a run registers: its inputs and outputs, the row entity types and context fields, and for
    a next-item run the training slice's most popular targets (``train_targets``) with their shares."""
    spec = plan.spec
    popular, shares = next_item.popular_items(train_targets) if train_targets is not None else ([], [])
    return signature_pb2.ModelSignature(
        inputs=inputs,
        outputs=outputs,
        entity_types=sorted(set(spec.rows.entity_fields.values())),
        key_entity=plan.key_entity,
        context_fields=[
            signature_pb2.ContextField(name=f, type=rows.context_types[f]) for f in spec.rows.context_fields
        ],
        task=plan.trainer.task,
        input_tensor="INPUT__0",
        trainer=plan.trainer.name,
        popular_items=popular,
        popular_item_shares=shares,
    )


class TrainingPipeline:
    """Runs one training run end to end (see module doc)."""

    def __init__(self, config: PipelineConfig, *, features: FeatureClient, runs: RunStore, deployer: Deployer) -> None:
        self._config = config
        self._features = features
        self._runs = runs
        self._deployer = deployer

    async def validate(self, spec: training_pb2.RunSpec) -> RunPlan:
        """Everything checkable before a run is queued: the spec, the lake sources and fields, the feature
        service (``NotFound``), and that the Triton model is not another model's (``FailedPrecondition``)."""
        plan = check_spec(spec)
        await asyncio.to_thread(check_lake, plan, self._config.lake_root)
        await check_feature_service(self._features, spec.feature_service)
        await self._deployer.check_triton_owner(spec.model_name, plan.triton_model_name)
        return plan

    async def execute(self, run: training_pb2.Run) -> Outcome:
        spec = run.spec
        plan = check_spec(spec)
        ctx = {"run_id": run.run_id, "model": spec.model_name, "trainer": plan.trainer.name}
        rows = await asyncio.to_thread(
            dataset.load_rows,
            self._config.lake_root,
            plan,
            start=spec.train_start.ToDatetime(tzinfo=UTC) if spec.HasField("train_start") else None,
            end=spec.train_end.ToDatetime(tzinfo=UTC) if spec.HasField("train_end") else None,
        )
        n = len(rows.times)
        log.info("run: rows loaded", extra={**ctx, "rows": n, "cutoff": rows.cutoff.isoformat()})
        if n < int(float(plan.params["min_rows"])):
            raise FailedPrecondition(f"only {n} mature labelled rows (min_rows={plan.params['min_rows']})")

        started = time.perf_counter()
        values = await self._features.historical(spec.feature_service, entity_rows(rows))
        log.info(
            "run: features retrieved",
            extra={
                **ctx,
                "features": len(values.names),
                "missing": values.missing,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        train_mask = self._split(plan, rows)
        columns = [[row[j] for row in values.values] for j in range(len(values.names))]
        train_columns = [[v for v, keep in zip(column, train_mask, strict=True) if keep] for column in columns]
        train_targets = [t for t, keep in zip(rows.targets, train_mask, strict=True) if keep] if plan.next_item else []
        if plan.next_item:
            inputs = next_item.infer_item_inputs(
                values.names, train_columns, train_targets, max_len=int(float(plan.params["max_len"]))
            )
            y = next_item.target_classes(rows.targets, next_item.sequence_input(inputs)[1].vocabulary)
        else:
            inputs = infer_inputs(values.names, train_columns)
            next_item.refuse_sequences(inputs, plan.trainer.name)
            y = rows.labels
        x = InputEncoder(inputs).matrix(columns)
        eval_columns = [[v for v, keep in zip(column, train_mask, strict=True) if not keep] for column in columns]
        profiles = await asyncio.to_thread(input_profiles.input_profiles, inputs, eval_columns, x[~train_mask])
        data = Dataset(tuple(inputs), x[train_mask], y[train_mask], x[~train_mask], y[~train_mask])
        if plan.binary:
            for name, labels in (("train", data.y_train), ("eval", data.y_eval)):
                if int(labels.sum()) < int(float(plan.params["min_positives"])):
                    raise FailedPrecondition(
                        f"the {name} slice has {int(labels.sum())} positive labels "
                        f"(min_positives={plan.params['min_positives']})"
                    )

        def progress(epoch: int, loss: float) -> None:
            log.info("run: epoch done", extra={**ctx, "epoch": epoch, "loss": loss})

        started = time.perf_counter()
        fitted = await asyncio.to_thread(
            plan.trainer.fit, data, plan.params, threads=self._config.torch_threads, progress=progress
        )
        train_seconds = time.perf_counter() - started
        if plan.next_item:
            metrics, profile = await asyncio.to_thread(next_item.evaluate, fitted, data, seed=spec.split.seed)
        else:
            scores = await asyncio.to_thread(model.predict, fitted.module, data.x_eval)
            train_scores = await asyncio.to_thread(model.predict, fitted.module, data.x_train)
            metrics = self._metrics(plan, data, scores, train_scores)
            profile = (
                evaluation.score_profile(scores)
                if plan.binary
                else evaluation.score_profile(scores, low=float(scores.min()), high=float(scores.max()))
            )
        metrics |= {
            "train_rows": float(len(data.y_train)),
            "eval_rows": float(len(data.y_eval)),
            "feature_missing_values": float(values.missing),
            "categorical_inputs": float(sum(i.kind == signature_pb2.INPUT_KIND_CATEGORICAL for i in inputs)),
            "train_seconds": train_seconds,
        }
        log.info("run: evaluated", extra={**ctx, **metrics})
        path = self._config.artifacts_dir / run.run_id / "model.pt"
        await asyncio.to_thread(model.save_torchscript, fitted.module, path)
        signature = signature_of(
            plan, rows, inputs, list(fitted.outputs), train_targets=train_targets if plan.next_item else None
        )
        await self._runs.save_artifact(
            run.run_id,
            TrainedArtifact(
                path=path,
                features=values.names,
                metrics=metrics,
                reference_profile=profile,
                signature=signature,
                input_profiles=tuple(profiles),
            ),
        )
        if not spec.register_model:
            return Outcome(metrics=metrics, model_version=0, message="trained; not registered (register_model unset)")
        return await self._deploy(run, plan, metrics, data.x_eval)

    @staticmethod
    def _split(plan: RunPlan, rows: dataset.Rows) -> NDArray[np.bool_]:
        split = plan.spec.split
        if split.kind == training_pb2.SPLIT_KIND_RANDOM:
            return dataset.random_split(len(rows.times), plan.train_fraction, split.seed)
        if split.kind == training_pb2.SPLIT_KIND_LEAVE_LAST_OUT:
            return dataset.leave_last_out_split([ids.get(plan.key_entity) for ids in rows.entity_ids])
        return dataset.time_split(rows.times_us, plan.train_fraction)

    @staticmethod
    def _metrics(
        plan: RunPlan, data: Dataset, scores: NDArray[np.float32], train_scores: NDArray[np.float32]
    ) -> dict[str, float]:
        if not plan.binary:
            return evaluation.regression_metrics(data.y_eval, scores) | {
                "train_r2": evaluation.regression_metrics(data.y_train, train_scores)["r2"]
            }
        threshold = float(plan.params["threshold"])
        at_threshold = evaluation.precision_recall(data.y_eval, scores, threshold)
        return {
            "auc": evaluation.roc_auc(data.y_eval, scores),
            "train_auc": evaluation.roc_auc(data.y_train, train_scores),
            "precision": at_threshold.precision,
            "recall": at_threshold.recall,
            "threshold": threshold,
            "train_positives": float(data.y_train.sum()),
            "eval_positives": float(data.y_eval.sum()),
        }

    async def _deploy(
        self, run: training_pb2.Run, plan: RunPlan, metrics: dict[str, float], x_eval: NDArray[np.float32]
    ) -> Outcome:
        spec = run.spec
        version, _ = await self._deployer.register(
            spec.model_name, run.run_id, feature_service=spec.feature_service, triton_model_name=plan.triton_model_name
        )
        check = await self._deployer.serve(version, np.ascontiguousarray(x_eval[:PARITY_SAMPLE_ROWS]))
        metrics |= {
            "triton_load_seconds": check.load_seconds,
            "triton_max_abs_diff": check.max_abs_diff,
            "triton_infer_seconds": check.infer_seconds,
        }
        alias = self._config.champion_alias
        floor_name = "floor"
        if plan.binary:
            quality, name, floor = metrics["auc"], "eval AUC", self._config.champion_auc_floor
        elif plan.next_item:
            quality, name, floor = metrics["hr@10"], "eval HR@10", metrics["popularity_hr@10"]
            floor_name = "popularity baseline's HR@10"
        else:
            quality, name, floor = metrics["r2"], "eval R2", 0.0
        if quality > floor:
            await self._deployer.promote(version, alias, reason=f"run {run.run_id}: {name} {quality:.4f}")
            message = f"version {version.version} is {alias} ({name} {quality:.4f} > {floor_name} {floor:.4g})"
        else:
            message = (
                f"version {version.version} registered without alias {alias}: {name} {quality:.4f} "
                f"is not above the {floor_name} {floor:.4g}"
            )
        log.info("run: " + message, extra={"run_id": run.run_id, "model": spec.model_name})
        return Outcome(metrics=metrics, model_version=version.version, message=message)
