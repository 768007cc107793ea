"""The streaming drift path's rate: predictions per second one core absorbs, against the ingest benchmark's rate.

``measure`` runs this module in a child process pinned to one core (``python -m bench.monitor.drift_stream``),
which:

1. registers one model version in a ``ModelCatalog`` (a ``VERSION_REGISTERED`` event) with ``--inputs``
   numeric inputs, each with its reference profile (``numeric_profile`` of seeded values, 10 bins) and a
   score profile;
2. serialises ``--predictions`` seeded ``Prediction`` events (unique event ids, one value per input, a
   score), as they lie on the prediction topic;
3. times decoding them (``Prediction.FromString``) and feeding them to monitor's
   ``aimesh.monitor.drift_windows.DriftWindows.observe`` in batches of ``BATCH`` (a consumer poll) with
   monitor's drift policy (``aimesh.monitor.app.drift_policy`` of its settings: windows of
   ``drift_window_count`` predictions), each closed window judged with ``compare`` per input as monitor does;
4. times ``bin_counts_matrix`` alone on the same values in the same batches (the math's own ceiling).

The rate to keep up with is the ingest service's records/s in ``bench/ingest/results.md`` (the prediction
topic carries at most one prediction per scored event).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.training.v1 import events_pb2, training_pb2
from aimesh.core.distribution import Floats, bin_counts_matrix, compare, numeric_profile
from aimesh.core.model_catalog import ModelCatalog
from aimesh.monitor.app import drift_policy
from aimesh.monitor.drift_monitor import DriftPolicy
from aimesh.monitor.drift_windows import DriftWindows
from aimesh.monitor.settings import MonitorSettings

BATCH = 500
MODEL = "bench_drift"
INGEST_RESULTS = Path(__file__).resolve().parents[1] / "ingest" / "results.md"


@dataclass(frozen=True, slots=True)
class StreamRate:
    predictions: int
    inputs: int
    core: int
    window: int
    """Predictions per drift window (monitor's ``drift_window_count``)."""
    windows_per_s: float
    """Predictions/s through decode + ``DriftWindows.observe`` + judging the closed windows."""
    matrix_per_s: float
    """Rows/s of ``bin_counts_matrix`` alone on the same batches."""
    decode_share: float
    """Share of the windows path's time spent decoding the events."""
    ingest_per_s: float
    """The ingest service's records/s from bench/ingest/results.md (0 when not found)."""


def _catalog(inputs: int, rng: np.random.Generator) -> tuple[ModelCatalog, list[str]]:
    names = [f"bench:f{j:03d}" for j in range(inputs)]
    reference = rng.normal(size=(20_000, inputs))
    scores = rng.uniform(size=20_000)
    edges = np.quantile(scores, np.linspace(0, 1, 11))
    event = events_pb2.ModelEvent(
        kind=events_pb2.MODEL_EVENT_KIND_VERSION_REGISTERED,
        model_name=MODEL,
        version=1,
        triton_model_name=MODEL,
        triton_model_version=1,
        features=names,
        reference_profile=training_pb2.ScoreProfile(bin_edges=edges.tolist(), fractions=[0.1] * 10, count=20_000),
        signature=signature_pb2.ModelSignature(
            inputs=[signature_pb2.SignatureInput(name=name, kind=signature_pb2.INPUT_KIND_NUMERIC) for name in names]
        ),
        input_profiles=[numeric_profile(name, reference[:, j]) for j, name in enumerate(names)],
    )
    catalog = ModelCatalog()
    catalog.apply(event)
    return catalog, names


def _events(names: list[str], values: Floats, scores: Floats) -> list[bytes]:
    made = []
    for row, score in zip(values.tolist(), scores.tolist(), strict=True):
        prediction = inference_events.Prediction(
            request_id=uuid.uuid4().hex,
            event_id=uuid.uuid4().hex,
            model_name=MODEL,
            model_version=1,
            score=score,
            features=dict(zip(names, row, strict=True)),
        )
        made.append(prediction.SerializeToString())
    return made


def _windows_rate(catalog: ModelCatalog, events: list[bytes], policy: DriftPolicy) -> tuple[float, float]:
    """(predictions/s, decode share) through monitor's DriftWindows."""
    windows = DriftWindows(
        catalog,
        window_s=policy.window_s,
        window_count=policy.window_count,
        min_samples=policy.min_samples,
        max_versions=policy.max_versions,
    )
    decoding = 0.0
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        decoded = time.perf_counter()
        batch = [inference_events.Prediction.FromString(data) for data in events[start : start + BATCH]]
        decoding += time.perf_counter() - decoded
        for window in windows.observe(batch):
            for tally in window.inputs:
                compare(tally.profile, tally.counts, policy.thresholds_for(MODEL), epsilon=policy.epsilon)
    elapsed = time.perf_counter() - started
    return len(events) / elapsed, decoding / elapsed


def _matrix_rate(catalog: ModelCatalog, values: Floats) -> float:
    version = catalog.version(MODEL, 1)
    assert version is not None
    profiles = list(version.input_profiles)
    started = time.perf_counter()
    for start in range(0, values.shape[0], BATCH):
        bin_counts_matrix(profiles, values[start : start + BATCH])
    return values.shape[0] / (time.perf_counter() - started)


def child(predictions: int, inputs: int, seed: int) -> dict[str, Any]:
    """Pin to one core and measure; the result as JSON-ready numbers."""
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    rng = np.random.default_rng([seed, 3])
    catalog, names = _catalog(inputs, rng)
    values = rng.normal(0.2, 1.0, size=(predictions, inputs))
    events = _events(names, values, rng.uniform(size=predictions))
    policy = drift_policy(MonitorSettings())
    windows_per_s, decode_share = _windows_rate(catalog, events, policy)
    return {
        "predictions": predictions,
        "inputs": inputs,
        "core": core,
        "window": policy.window_count,
        "windows_per_s": windows_per_s,
        "matrix_per_s": _matrix_rate(catalog, values),
        "decode_share": decode_share,
    }


def ingest_rate(path: Path = INGEST_RESULTS) -> float:
    """The ``ours`` row's records/s (the bold number) of the ingest benchmark's results, 0 when not found."""
    if not path.exists():
        return 0.0
    for line in path.read_text().splitlines():
        if line.startswith("| ours"):
            found = re.search(r"\*\*([\d,]+)\*\*", line)
            if found:
                return float(found.group(1).replace(",", ""))
    return 0.0


def measure(predictions: int, *, inputs: int = 10, seed: int = 42) -> StreamRate:
    """Run the child (this module) and read its numbers back; raises ``RuntimeError`` when it fails."""
    command = [sys.executable, "-m", "bench.monitor.drift_stream", "--predictions", str(predictions)]
    command += ["--inputs", str(inputs), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"drift_stream exited with {done.returncode}:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return StreamRate(ingest_per_s=ingest_rate(), **result)


def markdown(rates: list[StreamRate]) -> list[str]:
    """The streaming table: one row per path and input count, against the ingest service's rate."""
    if not rates:
        return []
    ingest = rates[0].ingest_per_s
    lines = [
        "| path (one core) | inputs | predictions/s | x the ingest service's rate |",
        "|---|--:|--:|--:|",
    ]

    def row(name: str, inputs: int, per_s: float) -> str:
        against = f"{per_s / ingest:.1f}x" if ingest else "n/a"
        return f"| {name} | {inputs} | **{per_s:,.0f}** | {against} |"

    path = "decode `Prediction` + `DriftWindows.observe` + `compare` per closed window"
    lines += [row(path, rate.inputs, rate.windows_per_s) for rate in rates]
    lines += [row(f"`bin_counts_matrix` alone, batches of {BATCH}", rate.inputs, rate.matrix_per_s) for rate in rates]
    lines += [
        "",
        f"{rates[0].predictions:,} synthetic predictions of a model with that many numeric inputs, batches of "
        f"{BATCH} (a consumer poll), monitor's drift policy (windows of {rates[0].window:,} predictions); the "
        f"child process pinned to core {rates[0].core}. The ingest service's rate: {ingest:,.0f} records/s "
        "(`bench/ingest/results.md`). Decoding the events is "
        + ", ".join(f"{rate.decode_share:.0%} at {rate.inputs} inputs" for rate in rates)
        + " of the windows path's time.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor.drift_stream")
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--inputs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    print(json.dumps(child(args.predictions, args.inputs, args.seed)))


if __name__ == "__main__":
    main()
