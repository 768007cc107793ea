"""Run parameters: ``RunSpec`` validation and the trainer's hyper-parameters from ``RunSpec.params``.

Label maturity: a chargeback arrives 1-10 days after a fraudulent payment (docs/scenario-fraud.md,
and the banking generator's default), so a payment younger than 10 days may still be fraud without a
label yet. Training only uses payments at least ``label_maturity_days`` (default 10) older than the
newest event in the lake: their labels are complete. With the generator's default 30-day span that
keeps the older two thirds of the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from aimesh.api.training.v1 import training_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.training.dataset import LabelSpec
from aimesh.training.model import TrainParams

TRAINER = "mlp_classifier"
DEFAULT_LABEL_SOURCE = "chargebacks"
DEFAULT_LABEL_FIELD = "reason"
TRITON_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class RunParams:
    """Everything a run needs besides the spec's names."""

    events_source: str
    labels: LabelSpec
    label_maturity: timedelta
    train_fraction: float
    threshold: float
    min_rows: int
    min_positives: int
    triton_model_name: str
    train: TrainParams


_KNOWN = {
    "events_source",
    "positive_label",
    "label_join_field",
    "label_maturity_days",
    "train_fraction",
    "threshold",
    "min_rows",
    "min_positives",
    "triton_model_name",
    "epochs",
    "batch_size",
    "learning_rate",
    "hidden",
    "seed",
}


def _number(params: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"spec.params[{name!r}] = {raw!r} is not a number") from None
    if not low <= value <= high:
        raise InvalidArgument(f"spec.params[{name!r}] = {raw} is outside [{low}, {high}]")
    return value


def _hidden(raw: str) -> tuple[int, int]:
    parts = raw.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and 0 < int(p) <= 4096 for p in parts):
        raise InvalidArgument(f"spec.params['hidden'] = {raw!r} must be two layer sizes like '32,16'")
    return int(parts[0]), int(parts[1])


def parse(spec: training_pb2.RunSpec, *, default_triton_name: str, threads: int) -> RunParams:
    """Validate ``spec`` and read its params; raises ``InvalidArgument`` naming the offending field."""
    if not spec.model_name:
        raise InvalidArgument("spec.model_name is required")
    if not spec.feature_service:
        raise InvalidArgument("spec.feature_service is required")
    if spec.trainer not in ("", TRAINER):
        raise InvalidArgument(f"spec.trainer {spec.trainer!r} is unknown; the only trainer is {TRAINER!r}")
    unknown = sorted(set(spec.params) - _KNOWN)
    if unknown:
        raise InvalidArgument(f"spec.params has unknown keys {unknown}; known: {sorted(_KNOWN)}")
    if (
        spec.HasField("train_start")
        and spec.HasField("train_end")
        and spec.train_start.ToDatetime() >= (spec.train_end.ToDatetime())
    ):
        raise InvalidArgument("spec.train_start must be before spec.train_end")
    p = dict(spec.params)
    triton_name = p.get("triton_model_name", default_triton_name)
    if not TRITON_NAME.fullmatch(triton_name):
        raise InvalidArgument(f"spec.params['triton_model_name'] = {triton_name!r} must match [A-Za-z0-9_-]+")
    return RunParams(
        events_source=p.get("events_source", "card_transactions"),
        labels=LabelSpec(
            source=spec.label_source or DEFAULT_LABEL_SOURCE,
            field=spec.label_field or DEFAULT_LABEL_FIELD,
            positive_value=p.get("positive_label", "fraud"),
            join_field=p.get("label_join_field", "transaction_id"),
        ),
        label_maturity=timedelta(days=_number(p, "label_maturity_days", 10.0, 0.0, 365.0)),
        train_fraction=_number(p, "train_fraction", 0.8, 0.05, 0.95),
        threshold=_number(p, "threshold", 0.5, 0.0, 1.0),
        min_rows=int(_number(p, "min_rows", 200, 10, 1e9)),
        min_positives=int(_number(p, "min_positives", 5, 1, 1e9)),
        triton_model_name=triton_name,
        train=TrainParams(
            epochs=int(_number(p, "epochs", 30, 1, 1000)),
            batch_size=int(_number(p, "batch_size", 256, 1, 1_000_000)),
            learning_rate=_number(p, "learning_rate", 3e-3, 1e-6, 1.0),
            hidden=_hidden(p.get("hidden", "32,16")),
            seed=int(_number(p, "seed", 7, 0, 2**31)),
            threads=threads,
        ),
    )
