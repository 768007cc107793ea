"""Streaming drift windows: per (model, version), bin counts of every profiled input and of the score,
fed from live Prediction events; no row is kept (transport-free, in memory).

``DriftWindows.observe`` takes a batch of predictions (shadow ones are skipped; a version the catalog
does not know, or that has neither input profiles nor a score profile, is skipped) and adds them to
the open window of their version:

- numeric inputs are binned with their profile (``aimesh.core.distribution``), many at once;
- categorical inputs arrive as vocabulary indexes (``Prediction.features``) and are decoded through the
  version's signature vocabulary into the profile's bins (a profile whose bins do not match its shares
  is left out);
- an input absent from ``Prediction.features`` or listed in ``missing_features`` (fed its fill) is
  counted as missing, in no bin, as in the reference profile.

A window closes when it holds ``window_count`` predictions (in ``observe``), or, in ``due``, when it has
been open ``window_s`` seconds of monitor's clock and holds at least ``min_samples`` (a quieter window
stays open until it does). A closed window is returned as a ``ClosedWindow`` and forgotten; the next
prediction of that version opens a new one.

Memory: per tracked version, the counts (inputs x bins) and the event ids seen in the open window (a
redelivered event is counted once per window; one redelivered after its window closed counts again in
the next: histograms are approximate under at-least-once redelivery). At most ``max_versions``
versions are tracked; feeding another evicts the least recently fed one, whose open window is
dropped. Each monitor replica sees the partitions it consumes: with several replicas, each judges the
share of traffic its partitions carry.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.training.v1 import training_pb2
from aimesh.core.distribution import (
    Counts,
    bin_counts,
    bin_counts_matrix,
    bin_encoded_categories,
    encoded_category_bins,
    score_profile,
)
from aimesh.core.model_catalog import ModelCatalog, ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tally:
    """One input's (or the score's, feature ``""``) counts in a window: per profile bin, and missing."""

    profile: training_pb2.FeatureProfile
    counts: Counts
    missing: int


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A closed window of one model version: when it was open, how many predictions it holds, the tally
    of each profiled input (profile order) and of the score (None without a score profile)."""

    model_name: str
    model_version: int
    start: datetime
    end: datetime
    predictions: int
    inputs: tuple[Tally, ...]
    score: Tally | None


class _OpenWindow:
    """The counts of one version's open window."""

    def __init__(self, version: ModelVersion, opened: datetime, opened_monotonic: float) -> None:
        self.version = version
        self.opened = opened
        self.opened_monotonic = opened_monotonic
        vocabularies = {i.name: list(i.vocabulary) for i in version.signature.inputs}
        self.profiles = [p for p in version.input_profiles if usable(p)]
        self.numeric = [j for j, p in enumerate(self.profiles) if p.kind != signature_pb2.INPUT_KIND_CATEGORICAL]
        self.tables = {
            j: encoded_category_bins(p, vocabularies.get(p.feature, []))
            for j, p in enumerate(self.profiles)
            if p.kind == signature_pb2.INPUT_KIND_CATEGORICAL
        }
        self.counts = [np.zeros(len(p.fractions), dtype=np.int64) for p in self.profiles]
        self.missing = [0] * len(self.profiles)
        reference = _score_reference(version)
        self.score = score_profile(reference) if reference is not None else None
        self.score_counts = np.zeros(len(self.score.fractions) if self.score else 0, dtype=np.int64)
        self.seen: set[str] = set()
        self.predictions = 0

    def add(self, predictions: Sequence[inference_events.Prediction]) -> None:
        """Count ``predictions``, but an event id already seen in this window (an event without one always)."""
        fresh: list[inference_events.Prediction] = []
        for prediction in predictions:
            if prediction.event_id and prediction.event_id in self.seen:
                continue
            if prediction.event_id:
                self.seen.add(prediction.event_id)
            fresh.append(prediction)
        self.predictions += len(fresh)
        if not fresh:
            return
        matrix = np.full((len(fresh), len(self.profiles)), np.nan)
        for i, prediction in enumerate(fresh):
            features, missing = prediction.features, set(prediction.missing_features)
            for j, profile in enumerate(self.profiles):
                name = profile.feature
                if name in features and name not in missing:
                    matrix[i, j] = features[name]
        if self.numeric:
            numeric = bin_counts_matrix([self.profiles[j] for j in self.numeric], matrix[:, self.numeric])
            for row, j in enumerate(self.numeric):
                self.counts[j] += numeric.counts[row, : self.counts[j].size]
                self.missing[j] += int(numeric.missing[row])
        for j, table in self.tables.items():
            counts, missing_count = bin_encoded_categories(self.profiles[j], table, matrix[:, j])
            self.counts[j] += counts
            self.missing[j] += missing_count
        if self.score is not None:
            self.score_counts += bin_counts(self.score, np.fromiter((p.score for p in fresh), dtype=np.float64))

    def close(self, end: datetime) -> ClosedWindow:
        return ClosedWindow(
            model_name=self.version.model_name,
            model_version=self.version.version,
            start=self.opened,
            end=end,
            predictions=self.predictions,
            inputs=tuple(
                Tally(profile, counts, missing)
                for profile, counts, missing in zip(self.profiles, self.counts, self.missing, strict=True)
            ),
            score=Tally(self.score, self.score_counts, 0) if self.score is not None else None,
        )


def usable(profile: training_pb2.FeatureProfile) -> bool:
    """True when ``profile`` has bins that match its shares (a malformed one is left out of the windows)."""
    bins = len(profile.fractions)
    if profile.kind == signature_pb2.INPUT_KIND_CATEGORICAL:
        return bins == len(profile.categories) + 1
    return bins >= 1 and len(profile.bin_edges) == bins + 1


def _score_reference(version: ModelVersion) -> training_pb2.ScoreProfile | None:
    if not version.has_reference:
        return None
    return training_pb2.ScoreProfile(
        bin_edges=version.reference_edges, fractions=version.reference_fractions, count=version.reference_count
    )


class DriftWindows:
    """The open windows (see the module doc)."""

    def __init__(
        self, catalog: ModelCatalog, *, window_s: float, window_count: int, min_samples: int, max_versions: int
    ) -> None:
        if window_count < 1 or max_versions < 1:
            raise ValueError("window_count and max_versions must be at least 1")
        self._catalog = catalog
        self._window_s = window_s
        self._window_count = window_count
        self._min_samples = max(min_samples, 1)
        self._max_versions = max_versions
        self._open: OrderedDict[tuple[str, int], _OpenWindow] = OrderedDict()

    @property
    def tracked(self) -> list[tuple[str, int]]:
        """The (model, version) pairs with an open window, least recently fed first."""
        return list(self._open)

    def observe(self, predictions: Sequence[inference_events.Prediction]) -> list[ClosedWindow]:
        """Add ``predictions`` to their versions' windows; returns the windows that reached
        ``window_count`` (a batch that overflows a window fills it, and the rest opens the next)."""
        groups: dict[tuple[str, int], list[inference_events.Prediction]] = {}
        for prediction in predictions:
            if not prediction.shadow:
                groups.setdefault((prediction.model_name, prediction.model_version), []).append(prediction)
        closed: list[ClosedWindow] = []
        for key, group in groups.items():
            version = self._catalog.version(*key)
            if version is None or not (version.input_profiles or version.has_reference):
                continue
            start = 0
            while start < len(group):
                window = self._window_of(key, version)
                room = self._window_count - window.predictions
                window.add(group[start : start + room])
                start += room
                if window.predictions >= self._window_count:
                    closed.append(self._close(key))
        return closed

    def due(self) -> list[ClosedWindow]:
        """Close and return the windows open ``window_s`` or longer that hold at least ``min_samples``."""
        now = time.monotonic()
        keys = [
            key
            for key, window in self._open.items()
            if now - window.opened_monotonic >= self._window_s and window.predictions >= self._min_samples
        ]
        return [self._close(key) for key in keys]

    def _window_of(self, key: tuple[str, int], version: ModelVersion) -> _OpenWindow:
        window = self._open.get(key)
        if window is None:
            window = _OpenWindow(version, datetime.now(UTC), time.monotonic())
            self._open[key] = window
        self._open.move_to_end(key)
        while len(self._open) > self._max_versions:
            (model, number), evicted = self._open.popitem(last=False)
            log.warning(
                "drift window dropped: too many versions tracked",
                extra={"model": model, "version": number, "predictions": evicted.predictions},
            )
        return window

    def _close(self, key: tuple[str, int]) -> ClosedWindow:
        return self._open.pop(key).close(datetime.now(UTC))
