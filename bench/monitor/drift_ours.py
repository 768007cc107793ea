"""The aimesh contender: ``python -m bench.monitor.drift_ours REFERENCE CURRENT OUT`` in the project's ``.venv``.

What monitor does with a model's inputs, on the benchmark's files, with ``aimesh.core.distribution``:

1. ``profile``: one column of the reference at a time, ``numeric_profile`` (quantile bins, ``--bins``), as
   training stores per input at registration;
2. ``bin``: the current file's bin counts, as monitor counts a window's live values, by ``--binning``:
   ``matrix`` (default): one Parquet row group (65,536 rows here) at a time, every column at once with
   ``bin_counts_matrix``, the counts added up; ``column``: one column at a time with ``bin_counts``;
3. ``compare``: ``compare(profile, counts, thresholds, epsilon=...)`` per column with the thresholds and PSI
   floor given (the harness passes monitor's: ``aimesh.monitor.app.drift_policy`` of its settings); a column
   is flagged when its verdict is drifted.

Neither table is ever held whole. Writes to OUT (JSON) the flagged columns, each column's scores, the
seconds of each phase from after the imports, its peak RSS (``drift_peak``) and the thresholds.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import numpy as np
import pyarrow.parquet as pq

from aimesh.api.training.v1 import training_pb2
from aimesh.core.distribution import (
    PSI_EPSILON,
    Counts,
    Thresholds,
    bin_counts,
    bin_counts_matrix,
    compare,
    numeric_profile,
)
from bench.monitor.drift_peak import peak_rss_bytes


def profiles(path: str, bins: int) -> list[training_pb2.FeatureProfile]:
    """The reference profile of every column of the Parquet file at ``path``, read one column at a time."""
    table = pq.ParquetFile(path)
    return [
        numeric_profile(name, table.read(columns=[name]).column(0).to_numpy(), bins=bins)
        for name in table.schema_arrow.names
    ]


def matrix_counts(path: str, reference: list[training_pb2.FeatureProfile]) -> list[Counts]:
    """Bin counts of every column of the current Parquet file at ``path``: row group by row group, read a
    column at a time into one reused matrix (so the extra memory is about one row group), every column
    binned at once with ``bin_counts_matrix``."""
    table = pq.ParquetFile(path)
    total = np.zeros((len(reference), 1), dtype=np.int64)
    matrix = np.empty((table.metadata.row_group(0).num_rows, len(reference)), dtype=np.float64)
    for group in range(table.metadata.num_row_groups):
        rows = table.metadata.row_group(group).num_rows
        for j, profile in enumerate(reference):
            matrix[:rows, j] = table.read_row_group(group, columns=[profile.feature]).column(0).to_numpy()
        binned = bin_counts_matrix(reference, matrix[:rows]).counts
        if binned.shape[1] > total.shape[1]:
            total = np.pad(total, ((0, 0), (0, binned.shape[1] - total.shape[1])))
        total += binned
    return [total[j, : len(profile.fractions)] for j, profile in enumerate(reference)]


def column_counts(path: str, reference: list[training_pb2.FeatureProfile]) -> list[Counts]:
    """Bin counts of every column of the current Parquet file at ``path``, one column at a time."""
    table = pq.ParquetFile(path)
    return [bin_counts(profile, table.read(columns=[profile.feature]).column(0).to_numpy()) for profile in reference]


BINNINGS = {"matrix": matrix_counts, "column": column_counts}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor.drift_ours")
    parser.add_argument("reference")
    parser.add_argument("current")
    parser.add_argument("out")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--binning", choices=sorted(BINNINGS), default="matrix")
    defaults = Thresholds()
    parser.add_argument("--psi", type=float, default=defaults.psi)
    parser.add_argument("--js-distance", type=float, default=defaults.js_distance)
    parser.add_argument("--wasserstein-stddevs", type=float, default=defaults.wasserstein_stddevs)
    parser.add_argument("--epsilon", type=float, default=PSI_EPSILON)
    args = parser.parse_args(argv)
    thresholds = Thresholds(args.psi, args.js_distance, args.wasserstein_stddevs)
    started = time.perf_counter()
    reference = profiles(args.reference, args.bins)
    profiled = time.perf_counter()
    table = BINNINGS[args.binning](args.current, reference)
    binned = time.perf_counter()
    scores = {
        profile.feature: compare(profile, table[j], thresholds, epsilon=args.epsilon)
        for j, profile in enumerate(reference)
    }
    done = time.perf_counter()
    result = {
        "flagged": sorted(name for name, score in scores.items() if score.drifted),
        "scores": {
            name: {
                "psi": s.psi,
                "js_distance": s.js_distance,
                "wasserstein_stddevs": s.wasserstein / s.reference_stddev if s.reference_stddev else 0.0,
            }
            for name, s in scores.items()
        },
        "phases": {"profile": profiled - started, "bin": binned - profiled, "compare": done - binned},
        "drift_s": done - started,
        "peak_rss": peak_rss_bytes(),
        "thresholds": asdict(thresholds),
        "epsilon": args.epsilon,
        "bins": args.bins,
        "binning": args.binning,
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
