"""The drift benchmark's data: a seeded reference and current table, written once as Parquet for both contenders.

Column ``fNNN`` draws from one of four families in turn (normal, log-normal, gamma, uniform) with seeded
parameters; reference and current rows are independent draws of the same distribution, except in the
shifted columns (``shift_fraction`` of them, at least one, chosen by the seed), whose current values are
moved by a clear but realistic amount, alternately:

* ``mean``: plus ``shift`` standard deviations of the column's distribution;
* ``scale``: spread ``1 + shift`` times wider around the distribution's mean.

Means and standard deviations are the families' exact ones, so the data is written in row groups of
``ROW_GROUP`` rows without ever holding a whole table; the files are float64, snappy-compressed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aimesh.core.distribution import Floats

ROW_GROUP = 65_536
FAMILIES = ("normal", "lognormal", "gamma", "uniform")


@dataclass(frozen=True, slots=True)
class Column:
    """One column's distribution (``family`` with parameters ``a`` and ``b``) and its shift ("" for none)."""

    name: str
    family: str
    a: float
    b: float
    shift: str = ""

    def mean(self) -> float:
        if self.family == "normal":
            return self.a
        if self.family == "lognormal":
            return math.exp(self.a + self.b**2 / 2)
        if self.family == "gamma":
            return self.a * self.b
        return self.a + self.b / 2

    def stddev(self) -> float:
        if self.family == "normal":
            return self.b
        if self.family == "lognormal":
            return math.sqrt((math.exp(self.b**2) - 1) * math.exp(2 * self.a + self.b**2))
        if self.family == "gamma":
            return math.sqrt(self.a) * self.b
        return self.b / math.sqrt(12)

    def draw(self, rng: np.random.Generator, rows: int) -> Floats:
        if self.family == "normal":
            return rng.normal(self.a, self.b, rows)
        if self.family == "lognormal":
            return rng.lognormal(self.a, self.b, rows)
        if self.family == "gamma":
            return rng.gamma(self.a, self.b, rows)
        return rng.uniform(self.a, self.a + self.b, rows)


@dataclass(frozen=True, slots=True)
class DriftData:
    """Where the two files are and what is in them."""

    rows: int
    columns: tuple[Column, ...]
    shift: float
    seed: int
    reference: Path
    current: Path

    @property
    def shifted(self) -> list[str]:
        return [column.name for column in self.columns if column.shift]


def columns(count: int, shift_fraction: float, seed: int) -> tuple[Column, ...]:
    """The seeded column distributions, ``max(1, round(count * shift_fraction))`` of them shifted."""
    rng = np.random.default_rng([seed, 0])
    chosen = sorted(rng.choice(count, size=max(1, round(count * shift_fraction)), replace=False).tolist())
    kinds = {index: ("mean", "scale")[i % 2] for i, index in enumerate(chosen)}
    made = []
    for j in range(count):
        family = FAMILIES[j % len(FAMILIES)]
        if family == "normal":
            a, b = rng.uniform(-100, 100), rng.uniform(1, 50)
        elif family == "lognormal":
            a, b = rng.uniform(0, 3), rng.uniform(0.3, 1.0)
        elif family == "gamma":
            a, b = rng.uniform(1, 5), rng.uniform(1, 10)
        else:
            a, b = rng.uniform(-10, 0), rng.uniform(1, 20)
        made.append(Column(f"f{j:03d}", family, float(a), float(b), kinds.get(j, "")))
    return tuple(made)


def write(directory: Path, rows: int, count: int, *, shift_fraction: float, shift: float, seed: int) -> DriftData:
    """Write ``reference.parquet`` and ``current.parquet`` (``rows`` x ``count``) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    data = DriftData(
        rows=rows,
        columns=columns(count, shift_fraction, seed),
        shift=shift,
        seed=seed,
        reference=directory / "reference.parquet",
        current=directory / "current.parquet",
    )
    _write_table(data.reference, data, rows, np.random.default_rng([seed, 1]), shifted=False)
    _write_table(data.current, data, rows, np.random.default_rng([seed, 2]), shifted=True)
    return data


def _write_table(path: Path, data: DriftData, rows: int, rng: np.random.Generator, *, shifted: bool) -> None:
    schema = pa.schema([(column.name, pa.float64()) for column in data.columns])
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for start in range(0, rows, ROW_GROUP):
            size = min(ROW_GROUP, rows - start)
            arrays = [_values(column, rng, size, data.shift if shifted else 0.0) for column in data.columns]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=ROW_GROUP)


def _values(column: Column, rng: np.random.Generator, rows: int, shift: float) -> pa.Array:
    values = column.draw(rng, rows)
    if shift and column.shift == "mean":
        values = values + shift * column.stddev()
    elif shift and column.shift == "scale":
        values = column.mean() + (1 + shift) * (values - column.mean())
    return pa.array(values, type=pa.float64())
