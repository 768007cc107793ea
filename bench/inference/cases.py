"""The benchmark's two use cases: what each model reads, the seeded data, the trainer.

- ``FRAUD`` (a bank's card fraud): ten numeric activity aggregates of an ``account`` (counts, sums, means
  over 1 h ... 30 d, a share), all from the feature store, ``mlp_classifier``; about 5 % positive labels
  that depend on them.
- ``MACHINE`` (a manufacturer's machine failure, the shape of tests/e2e's use case): two stored aggregates
  of a ``machine`` (24 h temperature mean, reading count) and three on-demand features computed from the
  request's context (the reading's temperature, vibration and ``site``, a categorical of three values),
  ``logistic_regression``; failure likely when vibration is high, more so at site ``south`` and on machines
  that run hot.

Each case's ``columns`` draws ``n`` rows, one list per feature in ``features`` order (numbers, or strings
for a categorical), and ``label`` a 0/1 label per row from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from aimesh.api.common.v1 import common_pb2
from aimesh.core.signature import Scalar
from aimesh.training.trainers import logistic_regression, mlp_classifier
from aimesh.training.trainers.tabular import TabularTrainer

Columns = list[list[Scalar]]


@dataclass(frozen=True)
class Case:
    """One use case: its entity, feature service and features (``context``: the on-demand features, each
    to the request-context field and type it is computed from), its trainer and data."""

    key: str
    title: str
    entity: str
    id_prefix: str
    feature_service: str
    features: tuple[str, ...]
    context: Mapping[str, tuple[str, common_pb2.ValueType]]
    trainer: TabularTrainer
    columns: Callable[[np.random.Generator, int], Columns]
    label: Callable[[Columns, np.random.Generator], NDArray[np.float32]]
    summary: str
    """What the inputs are, for the report."""


def _activity(rng: np.random.Generator, n: int) -> Columns:
    count_1h = rng.poisson(0.5, n)
    mean_24h = rng.lognormal(3.5, 1.0, n)
    count_7d = count_1h + rng.poisson(12.0, n)
    mean_30d = mean_24h * rng.lognormal(0.0, 0.3, n)
    x = np.column_stack(
        [
            count_1h,
            count_1h * mean_24h * rng.lognormal(0.0, 0.5, n),
            mean_24h,
            mean_24h * rng.lognormal(0.7, 0.4, n),
            count_7d,
            count_7d * mean_30d,
            mean_30d,
            mean_30d * rng.uniform(0.2, 1.5, n),
            rng.uniform(0.0, 900.0, n).round(),
            rng.beta(1.5, 8.0, n),
        ]
    ).astype(np.float64)
    return [list(x[:, j].tolist()) for j in range(x.shape[1])]


def _fraud_label(columns: Columns, rng: np.random.Generator) -> NDArray[np.float32]:
    x = np.asarray(columns, dtype=np.float64).T
    z = (
        0.9 * np.log1p(x[:, 1])
        + 0.6 * x[:, 0]
        - 0.5 * np.log1p(x[:, 6])
        + 4.0 * x[:, 9]
        - 0.002 * x[:, 8]
        + rng.normal(0, 0.5, len(x))
    )
    y: NDArray[np.float32] = (z > np.quantile(z, 0.95)).astype(np.float32)
    return y


SITES = ("north", "south", "east")


def _readings(rng: np.random.Generator, n: int) -> Columns:
    hot = rng.random(n) < 0.3
    mean = np.where(hot, 78.0, 65.0) + rng.normal(0, 2.0, n)
    return [
        list(mean.round(2).tolist()),
        list(rng.poisson(30.0, n).astype(np.float64).tolist()),
        list((mean + rng.normal(0, 4.0, n)).round(2).tolist()),
        list(np.abs(rng.normal(1.0, 0.6, n)).round(3).tolist()),
        [SITES[k] for k in rng.integers(0, len(SITES), n)],
    ]


def _failure_label(columns: Columns, rng: np.random.Generator) -> NDArray[np.float32]:
    mean = np.asarray(columns[0], dtype=np.float64)
    vibration = np.asarray(columns[3], dtype=np.float64)
    south = np.asarray([s == "south" for s in columns[4]], dtype=np.float64)
    logit = -4.5 + 2.2 * vibration + 1.5 * south + 1.0 * (mean > 72.0)
    y: NDArray[np.float32] = (rng.random(len(mean)) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return y


FRAUD = Case(
    key="fraud",
    title="card fraud (banking)",
    entity="account",
    id_prefix="acct",
    feature_service="bench_score",
    features=tuple(
        f"bench_activity:{name}"
        for name in (
            "count_1h",
            "sum_1h",
            "mean_24h",
            "max_24h",
            "count_7d",
            "sum_7d",
            "mean_30d",
            "std_30d",
            "days_since_first",
            "night_share_30d",
        )
    ),
    context={},
    trainer=mlp_classifier.TRAINER,
    columns=_activity,
    label=_fraud_label,
    summary="10 numeric activity aggregates of an `account` from the feature store (no context)",
)
MACHINE = Case(
    key="machine",
    title="machine failure (industrial)",
    entity="machine",
    id_prefix="m",
    feature_service="bench_machine",
    features=(
        "bench_machine_stats:temperature_mean_24h",
        "bench_machine_stats:readings_24h",
        "bench_reading:temperature_now",
        "bench_reading:vibration_now",
        "bench_reading:site_now",
    ),
    context={
        "bench_reading:temperature_now": ("temperature", common_pb2.VALUE_TYPE_DOUBLE),
        "bench_reading:vibration_now": ("vibration", common_pb2.VALUE_TYPE_DOUBLE),
        "bench_reading:site_now": ("site", common_pb2.VALUE_TYPE_STRING),
    },
    trainer=logistic_regression.TRAINER,
    columns=_readings,
    label=_failure_label,
    summary=(
        "2 numeric aggregates of a `machine` from the feature store and 3 on-demand inputs from the request's "
        "context (temperature, vibration: numbers; `site`: a categorical of 3 values)"
    ),
)
CASES = (FRAUD, MACHINE)


def context_value(item: Scalar) -> common_pb2.Value:
    """The request-context ``Value`` of a context column's value (a number or a string)."""
    if isinstance(item, str):
        return common_pb2.Value(string_value=item)
    assert isinstance(item, int | float)
    return common_pb2.Value(double_value=float(item))


def stored(case: Case) -> Sequence[int]:
    """Positions in ``features`` of the features the feature store serves (not computed from the context)."""
    return [j for j, name in enumerate(case.features) if name not in case.context]
