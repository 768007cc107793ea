"""``RunSpec`` validation: everything a run needs is checked before it is queued.

``check_spec`` is pure (no I/O): names, the trainer and its parameters, the label, the split.
``check_lake`` reads only the lake's Parquet schemas: the row source and the label source exist and have
the named fields. The feature service is checked by the worker through the feature client. Errors name the
field and what exists: ``NotFound`` for an unknown trainer or source, ``InvalidArgument`` otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core import lake
from aimesh.core.errors import InvalidArgument, NotFound
from aimesh.training.trainers import TRAINERS, trainer
from aimesh.training.trainers.base import Trainer, number

NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
RUN_PARAMS = {"min_rows": "50", "min_positives": "5", "threshold": "0.5"}
"""Parameters of the run itself (any trainer): rows and positives needed, the precision/recall threshold."""
DEFAULT_TRAIN_FRACTION = 0.8
LABEL_TASKS = {
    training_pb2.LABEL_KIND_BINARY: signature_pb2.TASK_BINARY_CLASSIFICATION,
    training_pb2.LABEL_KIND_REGRESSION: signature_pb2.TASK_REGRESSION,
    training_pb2.LABEL_KIND_NEXT_ITEM: signature_pb2.TASK_NEXT_ITEM,
}
"""The task a trainer must have for each label kind."""
ENTITY_KEY = "entity_key"
"""The lake column holding a record's key (``TrainingRows.entity_fields`` may name it)."""


@dataclass(frozen=True)
class RunPlan:
    """A validated spec with its defaults filled in."""

    spec: training_pb2.RunSpec
    trainer: Trainer
    params: dict[str, str]
    """Trainer and run parameters, defaults overridden by ``spec.params``."""
    triton_model_name: str
    key_entity: str
    maturity: timedelta
    train_fraction: float

    @property
    def binary(self) -> bool:
        return self.spec.label.kind == training_pb2.LABEL_KIND_BINARY

    @property
    def next_item(self) -> bool:
        return self.spec.label.kind == training_pb2.LABEL_KIND_NEXT_ITEM


def _check_rows(rows: training_pb2.TrainingRows) -> str:
    """Validate ``spec.rows``; returns the key entity."""
    if not rows.source:
        raise InvalidArgument("spec.rows.source is required: the lake source whose records are the training rows")
    if not rows.entity_fields:
        raise InvalidArgument("spec.rows.entity_fields is required: record field -> entity type, at least one")
    entity_types = sorted(set(rows.entity_fields.values()))
    key_entity = rows.key_entity or entity_types[0]
    if key_entity not in entity_types:
        raise InvalidArgument(f"spec.rows.key_entity {key_entity!r} is none of the row entity types {entity_types}")
    for field, accepted in rows.filter.items():
        if not field or not all(accepted.split(",")):
            raise InvalidArgument(
                f"spec.rows.filter[{field!r}] = {accepted!r}: a field name and one or more comma-separated "
                "non-empty values are required"
            )
    return key_entity


def _check_label(label: training_pb2.LabelSpec, chosen: Trainer) -> None:
    """Validate ``spec.label`` against the trainer's task."""
    if not label.target_field:
        raise InvalidArgument("spec.label.target_field is required")
    wanted = LABEL_TASKS.get(label.kind)
    if wanted is None:
        raise InvalidArgument(
            "spec.label.kind is required: LABEL_KIND_BINARY, LABEL_KIND_REGRESSION or LABEL_KIND_NEXT_ITEM"
        )
    if chosen.task != wanted:
        raise InvalidArgument(
            f"trainer {chosen.name!r} predicts {signature_pb2.Task.Name(chosen.task)}, but spec.label.kind is "
            f"{training_pb2.LabelKind.Name(label.kind)}"
        )
    if label.kind == training_pb2.LABEL_KIND_BINARY and not label.positive_values:
        raise InvalidArgument("spec.label.positive_values is required for a binary label")
    if label.source and not label.join_field:
        raise InvalidArgument("spec.label.join_field is required when the label comes from another source")
    if label.kind == training_pb2.LABEL_KIND_NEXT_ITEM and label.source:
        raise InvalidArgument(
            "spec.label.source must be empty for LABEL_KIND_NEXT_ITEM: the target is the row's own field"
        )


def check_spec(spec: training_pb2.RunSpec) -> RunPlan:
    """Validate ``spec`` without I/O; raises ``InvalidArgument``/``NotFound`` naming the field."""
    if not NAME.fullmatch(spec.model_name):
        raise InvalidArgument(f"spec.model_name {spec.model_name!r} must match [A-Za-z0-9_-]{{1,128}}")
    if not spec.feature_service:
        raise InvalidArgument("spec.feature_service is required")
    if not spec.trainer:
        raise InvalidArgument(f"spec.trainer is required ({', '.join(sorted(TRAINERS))})")
    chosen = trainer(spec.trainer)
    key_entity = _check_rows(spec.rows)
    _check_label(spec.label, chosen)
    defaults = {**RUN_PARAMS, **chosen.defaults}
    if unknown := sorted(set(spec.params) - set(defaults)):
        raise InvalidArgument(f"spec.params has unknown keys {unknown}; {chosen.name} takes {sorted(defaults)}")
    params = {**defaults, **spec.params}
    chosen.check(params)
    number(params, "min_rows", 2, 1e9)
    number(params, "min_positives", 1, 1e9)
    number(params, "threshold", 0.0, 1.0)
    if (
        spec.HasField("train_start")
        and spec.HasField("train_end")
        and spec.train_start.ToDatetime() >= (spec.train_end.ToDatetime())
    ):
        raise InvalidArgument("spec.train_start must be before spec.train_end")
    fraction = spec.split.train_fraction or DEFAULT_TRAIN_FRACTION
    if not 0.05 <= fraction <= 0.95:
        raise InvalidArgument(f"spec.split.train_fraction {fraction} is outside [0.05, 0.95]")
    maturity = spec.label.maturity.ToTimedelta()
    if maturity < timedelta(0):
        raise InvalidArgument("spec.label.maturity must not be negative")
    triton_name = spec.triton_model_name or spec.model_name
    if not NAME.fullmatch(triton_name):
        raise InvalidArgument(f"spec.triton_model_name {triton_name!r} must match [A-Za-z0-9_-]{{1,128}}")
    return RunPlan(
        spec=spec,
        trainer=chosen,
        params=params,
        triton_model_name=triton_name,
        key_entity=key_entity,
        maturity=maturity,
        train_fraction=fraction,
    )


def lake_sources(root: Path) -> list[str]:
    """The sources the lake holds files for, sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name.removeprefix("source=") for p in root.iterdir() if p.is_dir() and p.name.startswith("source="))


def _columns(root: Path, source: str, what: str) -> set[str]:
    names = set(lake.dataset(root, source).schema.names)
    if not names:
        raise NotFound(
            f"{what} {source!r} has no data in the lake at {root}; sources with data: "
            f"{', '.join(lake_sources(root)) or 'none'}"
        )
    return names


def _require(columns: set[str], fields: list[str], where: str, source: str) -> None:
    if missing := [f for f in fields if f not in columns]:
        raise InvalidArgument(
            f"{where}: source {source!r} has no field(s) {', '.join(missing)}; its fields: {', '.join(sorted(columns))}"
        )


def check_lake(plan: RunPlan, root: Path) -> None:
    """The row and label sources exist in the lake with the fields the spec names (reads schemas only)."""
    rows, label = plan.spec.rows, plan.spec.label
    columns = _columns(root, rows.source, "spec.rows.source")
    _require(columns, sorted(rows.entity_fields), "spec.rows.entity_fields", rows.source)
    _require(columns, list(rows.context_fields), "spec.rows.context_fields", rows.source)
    _require(columns, sorted(rows.filter), "spec.rows.filter", rows.source)
    if not label.source:
        _require(columns, [label.target_field], "spec.label.target_field", rows.source)
        return
    _require(columns, [label.row_field or "event_id"], "spec.label.row_field", rows.source)
    label_columns = _columns(root, label.source, "spec.label.source")
    _require(label_columns, [label.join_field, label.target_field], "spec.label", label.source)
