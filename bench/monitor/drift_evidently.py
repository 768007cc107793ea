"""The Evidently contender: ``python drift_evidently.py REFERENCE CURRENT OUT`` in Evidently's own virtualenv.

Reads both Parquet files into pandas frames and runs ``Report([DataDriftPreset()], include_tests=True)``
with every default (so each column gets Evidently's automatic test: Wasserstein distance (normed) >= 0.1
for numeric columns of more than 1,000 rows). A column is flagged when its ``ValueDrift`` test FAILs.
Writes to OUT (JSON): the flagged columns, each column's method, score and threshold, the seconds of
each phase (``read``, ``run``: the report, ``results``: reading the verdicts back) from after the imports,
its peak RSS (``drift_peak``, its sibling module) and the versions. Imports nothing from aimesh: it runs
outside the project's environment.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any

from drift_peak import peak_rss_bytes


def main(reference: str, current: str, out: str) -> None:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    reference_frame = pd.read_parquet(reference)
    current_frame = pd.read_parquet(current)
    read = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=current_frame, reference_data=reference_frame
    )
    ran = time.perf_counter()
    flagged, scores = verdicts(snapshot.dict())
    done = time.perf_counter()
    result = {
        "flagged": flagged,
        "scores": scores,
        "phases": {"read": read - started, "run": ran - read, "results": done - ran},
        "drift_s": done - started,
        "peak_rss": peak_rss_bytes(),
        "versions": {name: version(name) for name in ("evidently", "pandas", "numpy", "scipy", "pyarrow")},
    }
    with open(out, "w") as handle:
        json.dump(result, handle)


def verdicts(snapshot: dict[str, Any]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The columns whose ValueDrift test failed, and each column's method, score and threshold."""
    scores: dict[str, dict[str, Any]] = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = {
                "method": config["method"],
                "score": metric["value"],
                "threshold": config["threshold"],
            }
    flagged = []
    for test in snapshot["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type", "").endswith(":ValueDrift") and test["status"] == "FAIL":
            flagged.append(params["column"])
    return sorted(flagged), scores


if __name__ == "__main__":
    main(*sys.argv[1:4])
