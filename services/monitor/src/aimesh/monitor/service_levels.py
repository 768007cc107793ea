"""Rolling-window service levels per model from the prediction stream, in bounded memory.

``ServiceLevelTracker.observe_events`` takes every consumed event (only non-shadow ``Prediction``s
count) and adds it, at its event time, to its model's ``SlotRing``: ``slot_seconds``-wide slots covering
``longest_window_s`` (a fixed ring of ``ceil(longest / slot) + 1`` slots per model, reused as time moves
on; a prediction older than the ring, e.g. a replayed backlog, is left out; one from the future counts
now). Each slot holds the answered calls, the fallback answers, the answers bad for the SLO, and two
fixed-bucket histograms (``LogBuckets``): latency in ms and feature freshness in seconds. Memory per
model: slots x (latency + freshness buckets) x 4 bytes; with the defaults (1 h, 5 s slots, 1.1 and 1.25
bucket growth) 721 x (150 + 100) x 4 B, about 0.7 MB. At most ``max_models`` models are tracked (the
others are counted in ``aimesh_monitor_slo_untracked_total`` and logged once).

``levels`` answers a window ending now: requests, latency p50/p99, the fallback rate, the error rate and
the median freshness. A quantile is the geometric middle of its histogram bucket, so it is within
``(growth - 1) / 2`` (5 % for latency by default) of the exact value, clamped to the bucket range.

Error rate: a Prediction exists only for an answered call, so a call that failed outright is invisible
here (inference counts those in ``aimesh_grpc_requests_total``, which has no model label). What the
stream does show per model is the call whose model could not be used: it was answered by a fallback
(route ``ROUTE_FALLBACK``: the model call failed or ran out of time). ``error_rate`` is that share, so it
equals ``fallback_rate`` until inference publishes failed calls. The SLO's bad events (``bad``) are the
answers that were a fallback or slower than ``slo_latency_ms``.

The newest trace id of an answer slower than ``slow_ms``, of a fallback, of an answer staler than
``stale_s`` and of a bad answer is kept per model (with its time) for the alert rules, plus the newest
trace id overall. The windows start empty when monitor starts: they hold what was consumed since.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.api.monitor.v1 import monitor_pb2
from aimesh.core.events import Event
from aimesh.monitor import metrics
from aimesh.monitor.documents import trace_id_of
from aimesh.monitor.indexing import PREDICTION_TYPE

log = logging.getLogger(__name__)


class LogBuckets:
    """Histogram buckets with geometric edges ``lowest * growth**i`` up to ``highest``, plus one bucket
    below ``lowest`` (zero included) and one above ``highest``."""

    def __init__(self, lowest: float, highest: float, growth: float) -> None:
        if not 0 < lowest < highest or growth <= 1:
            raise ValueError("buckets need 0 < lowest < highest and growth > 1")
        self.lowest, self.growth = lowest, growth
        self.inner = math.ceil(math.log(highest / lowest) / math.log(growth))
        self.size = self.inner + 2

    def index(self, value: float) -> int:
        """The bucket of ``value``: 0 below ``lowest``, ``size - 1`` at or above the highest edge."""
        if not value >= self.lowest:  # NaN too
            return 0
        return min(int(math.log(value / self.lowest) / math.log(self.growth)) + 1, self.size - 1)

    def value(self, index: int) -> float:
        """The value a quantile falling into bucket ``index`` reports: its geometric middle (the outer
        buckets: their inner edge, 0 for the lowest)."""
        if index <= 0:
            return 0.0
        if index >= self.size - 1:
            return float(self.lowest * self.growth**self.inner)
        return float(self.lowest * self.growth ** (index - 0.5))

    def quantile(self, counts: npt.NDArray[np.int64], q: float) -> float:
        """The ``q`` quantile of a histogram over these buckets (0 for an empty one)."""
        total = int(counts.sum())
        if total == 0:
            return 0.0
        rank = max(math.ceil(q * total), 1)
        return self.value(int(np.searchsorted(np.cumsum(counts), rank)))


LATENCY_MS = LogBuckets(0.05, 120_000.0, 1.1)
FRESHNESS_S = LogBuckets(0.01, 30 * 86_400.0, 1.25)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What makes an answer worth naming in an alert: slower than ``slow_ms``, staler than ``stale_s``,
    or bad for the SLO (a fallback or slower than ``slo_latency_ms``). 0 disables a check."""

    slow_ms: float = 0.0
    stale_s: float = 0.0
    slo_latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """One window's sums."""

    start: datetime
    end: datetime
    requests: int
    fallbacks: int
    bad: int
    latency: npt.NDArray[np.int64]
    freshness: npt.NDArray[np.int64]


@dataclass(slots=True)
class Witness:
    """The newest prediction of a kind: its trace id and time."""

    trace_id: str = ""
    at: float = -math.inf


_SCALARS = 3  # requests, fallbacks, bad


@dataclass
class SlotRing:
    """A model's slots (see the module doc); ``epochs[i]`` is the absolute slot number slot ``i`` holds."""

    slots: int
    slot_seconds: float
    scalars: npt.NDArray[np.int32] = field(init=False)
    latency: npt.NDArray[np.int32] = field(init=False)
    freshness: npt.NDArray[np.int32] = field(init=False)
    epochs: npt.NDArray[np.int64] = field(init=False)
    witnesses: dict[str, Witness] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scalars = np.zeros((self.slots, _SCALARS), dtype=np.int32)
        self.latency = np.zeros((self.slots, LATENCY_MS.size), dtype=np.int32)
        self.freshness = np.zeros((self.slots, FRESHNESS_S.size), dtype=np.int32)
        self.epochs = np.full(self.slots, -1, dtype=np.int64)

    def add(self, at: float, now: float, latency_ms: float, freshness_s: float, *, fallback: bool, bad: bool) -> bool:
        """Count one answer at epoch seconds ``at`` (clamped to ``now``); False when older than the ring."""
        epoch = int(min(at, now) // self.slot_seconds)
        if epoch <= int(now // self.slot_seconds) - self.slots:
            return False
        i = epoch % self.slots
        if self.epochs[i] != epoch:
            self.scalars[i] = 0
            self.latency[i] = 0
            self.freshness[i] = 0
            self.epochs[i] = epoch
        self.scalars[i] += (1, int(fallback), int(bad))
        self.latency[i, LATENCY_MS.index(latency_ms)] += 1
        self.freshness[i, FRESHNESS_S.index(freshness_s)] += 1
        return True

    def window(self, window_s: float, now: float) -> WindowCounts:
        """The sums of the slots within ``window_s`` before ``now`` (whole slots: the current one and the
        ``ceil(window / slot) - 1`` before it)."""
        last = int(now // self.slot_seconds)
        count = min(max(math.ceil(window_s / self.slot_seconds), 1), self.slots)
        rows = (self.epochs > last - count) & (self.epochs <= last)
        scalars = self.scalars[rows].sum(axis=0, dtype=np.int64)
        return WindowCounts(
            start=datetime.fromtimestamp(now - window_s, UTC),
            end=datetime.fromtimestamp(now, UTC),
            requests=int(scalars[0]) if rows.any() else 0,
            fallbacks=int(scalars[1]) if rows.any() else 0,
            bad=int(scalars[2]) if rows.any() else 0,
            latency=self.latency[rows].sum(axis=0, dtype=np.int64),
            freshness=self.freshness[rows].sum(axis=0, dtype=np.int64),
        )


def levels_of(model: str, counts: WindowCounts) -> monitor_pb2.ServiceLevels:
    """The ``ServiceLevels`` message of one window's sums (rates 0 without requests)."""
    rate = counts.fallbacks / counts.requests if counts.requests else 0.0
    levels = monitor_pb2.ServiceLevels(
        model_name=model,
        requests=counts.requests,
        latency_p50_ms=LATENCY_MS.quantile(counts.latency, 0.5),
        latency_p99_ms=LATENCY_MS.quantile(counts.latency, 0.99),
        error_rate=rate,
        fallback_rate=rate,
        feature_freshness_p50_seconds=FRESHNESS_S.quantile(counts.freshness, 0.5),
    )
    levels.window_start.FromDatetime(counts.start)
    levels.window_end.FromDatetime(counts.end)
    return levels


class ServiceLevelTracker:
    """Per-model ``SlotRing``s fed from the consumed events (see the module doc)."""

    def __init__(
        self,
        *,
        longest_window_s: float = 3600.0,
        slot_seconds: float = 5.0,
        max_models: int = 1000,
        thresholds: Thresholds = Thresholds(),
        clock: Callable[[], float] = lambda: datetime.now(UTC).timestamp(),
    ) -> None:
        if slot_seconds <= 0 or longest_window_s < slot_seconds:
            raise ValueError("service levels need 0 < slot_seconds <= longest_window_s")
        self.longest_window_s = longest_window_s
        self._slots = math.ceil(longest_window_s / slot_seconds) + 1
        self._slot_seconds = slot_seconds
        self._max_models = max_models
        self.thresholds = thresholds
        self._clock = clock
        self._rings: dict[str, SlotRing] = {}
        self._warned = False

    def models(self) -> list[str]:
        """The models seen since start, sorted."""
        return sorted(self._rings)

    def observe_events(self, events: Sequence[Event]) -> None:
        """Count the non-shadow predictions among ``events``; anything else (or undecodable) is skipped."""
        now = self._clock()
        for event in events:
            if event.ce_type != PREDICTION_TYPE:
                continue
            try:
                prediction = inference_events.Prediction.FromString(event.value)
            except DecodeError:  # the indexer dead-letters it; nothing to count
                continue
            self.observe(prediction, trace_id_of(event), now)

    def observe(self, prediction: inference_events.Prediction, trace_id: str, now: float | None = None) -> None:
        """Count one prediction (shadow ones are not answers: skipped)."""
        if prediction.shadow or prediction.route == inference_pb2.ROUTE_SHADOW or not prediction.model_name:
            return
        now = self._clock() if now is None else now
        ring = self._ring(prediction.model_name)
        if ring is None:
            return
        at = prediction.time.ToNanoseconds() / 1e9 if prediction.HasField("time") else now
        latency_ms = prediction.latency.ToNanoseconds() / 1e6
        freshness = prediction.feature_freshness_seconds
        fallback = prediction.route == inference_pb2.ROUTE_FALLBACK
        t = self.thresholds
        bad = fallback or (t.slo_latency_ms > 0 and latency_ms > t.slo_latency_ms)
        if not ring.add(at, now, latency_ms, freshness, fallback=fallback, bad=bad) or not trace_id:
            return
        at = min(at, now)
        marks = {
            "any": True,
            "slow": t.slow_ms > 0 and latency_ms > t.slow_ms,
            "fallback": fallback,
            "stale": t.stale_s > 0 and freshness > t.stale_s,
            "bad": bad,
        }
        for kind, marked in marks.items():
            witness = ring.witnesses.setdefault(kind, Witness())
            if marked and at >= witness.at:
                witness.trace_id, witness.at = trace_id, at

    def _ring(self, model: str) -> SlotRing | None:
        ring = self._rings.get(model)
        if ring is None:
            if len(self._rings) >= self._max_models:
                metrics.SLO_UNTRACKED.inc()
                if not self._warned:
                    log.warning("service levels: more than %d models; %r is not tracked", self._max_models, model)
                    self._warned = True
                return None
            ring = self._rings[model] = SlotRing(self._slots, self._slot_seconds)
        return ring

    def counts(self, model: str, window_s: float) -> WindowCounts | None:
        """The sums of ``model``'s window ending now; None for a model never seen."""
        ring = self._rings.get(model)
        if ring is None:
            return None
        return ring.window(min(window_s, self.longest_window_s), self._clock())

    def levels(self, model: str, window_s: float) -> monitor_pb2.ServiceLevels | None:
        """``model``'s levels over the window ending now; None for a model never seen."""
        counts = self.counts(model, window_s)
        return None if counts is None else levels_of(model, counts)

    def empty_levels(self, model: str, window_s: float) -> monitor_pb2.ServiceLevels:
        """The levels of a window without answers (a known model not seen since start)."""
        ring = SlotRing(1, self._slot_seconds)
        return levels_of(model, ring.window(min(window_s, self.longest_window_s), self._clock()))

    def witness(self, model: str, kind: str, window_s: float) -> str:
        """The trace id of ``model``'s newest prediction of ``kind`` ("slow", "fallback", "stale", "bad")
        within the window, else of its newest prediction, else ''."""
        ring = self._rings.get(model)
        if ring is None:
            return ""
        since = self._clock() - window_s
        for name in (kind, "any"):
            found = ring.witnesses.get(name)
            if found is not None and found.trace_id and found.at >= since:
                return found.trace_id
        return ""
