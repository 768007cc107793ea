"""The one function that computes feature values, used by online serving and offline retrieval alike.

``compute_features`` is pure: given, per feature view, the entity's history cut at the lookup time
``t`` (``EntityHistory.before``: the retained events strictly before ``t``), the request context and
``t``, it returns values, event times and statuses (TTL included). The online store builds the
histories from its tables, offline retrieval from the lake; both cut them with
``EntityHistory.before``, so they agree by construction. Sums use ``math.fsum`` (exactly rounded) and
events are ordered by (event time, event id), so the order events arrive in never changes a value.

Speed: a history keeps its events sorted with per-field columns built once (and kept by the online
store's read cache), so a window is two binary searches and a list slice; a ``FeaturePlan`` (built
once per registry and selection) groups the selected features by view, window and field, so each
window is cut once per row and each field's numbers are summed once per window; a ``last_n`` list walks
back from the window's newest event only until it holds ``n`` values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions.expressions import ExpressionError
from aimesh.feature.definitions.registry import Registry, ResolvedFeature
from aimesh.feature.definitions.specs import Aggregation, ListType
from aimesh.feature.history import HistoryCut, Scalar

RequestContext = Mapping[str, Scalar]
FeatureValue = Scalar | tuple[Scalar, ...]
"""A computed value: a scalar, or the tuple of a ``last_n`` feature (oldest first)."""
Result = tuple[Scalar | None, int | None, "Status"]


class Status(IntEnum):
    """A value's status; the values are the wire enum's."""

    PRESENT = feature_pb2.FEATURE_STATUS_PRESENT
    MISSING = feature_pb2.FEATURE_STATUS_MISSING
    EXPIRED = feature_pb2.FEATURE_STATUS_EXPIRED


@dataclass(frozen=True)
class FeatureVector:
    """Values in the requested order (None: no value), their event times and statuses.

    A value's event time is the time of the newest event behind it: for a stream-fed feature the newest
    event of the entity in the view that the lookup sees (what the ttl is judged by; also for a window
    that event has left), for an on-demand feature the newest of its stream dependencies' times. None
    when the value is MISSING, and for an on-demand value of the request context alone (no event).
    """

    values: list[FeatureValue | None]
    event_times_us: list[int | None]
    statuses: list[Status]


@dataclass
class _Window:
    """The features of one view over one window, by what they read."""

    window_us: int | None
    counts: list[int] = field(default_factory=list)
    numeric: dict[str, list[tuple[Aggregation, int]]] = field(default_factory=lambda: defaultdict(list))
    over_values: list[tuple[Aggregation, str, int]] = field(default_factory=list)
    sequences: list[tuple[str, int, ListType, int]] = field(default_factory=list)
    """``last_n`` features: (field, n, element type, slot)."""


@dataclass
class _ViewPlan:
    name: str
    ttl_us: int | None
    windows: dict[int | None, _Window] = field(default_factory=dict)
    specials: list[tuple[Aggregation, str, int | None, int]] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _OnDemand:
    slot: int
    resolved: ResolvedFeature
    deps: tuple[tuple[str, int], ...]


class FeaturePlan:
    """How to compute one selection: slots ``0..n-1`` are the selected features in order, further slots
    the stream features that on-demand features read without being selected."""

    def __init__(self, features: Sequence[ResolvedFeature], registry: Registry) -> None:
        self.size = len(features)
        slot_of: dict[str, int] = {}
        stream: list[tuple[int, ResolvedFeature]] = []
        on_demand: list[tuple[int, ResolvedFeature]] = []
        for slot, resolved in enumerate(features):
            (on_demand if resolved.view.on_demand else stream).append((slot, resolved))
            slot_of.setdefault(resolved.ref, slot)
        self.slots = len(features)
        for _, resolved in on_demand:
            for dep in registry.dependencies(resolved):
                if dep.ref not in slot_of:
                    slot_of[dep.ref] = self.slots
                    stream.append((self.slots, dep))
                    self.slots += 1
        views: dict[str, _ViewPlan] = {}
        for slot, resolved in stream:
            view, f = resolved.view, resolved.feature
            plan = views.get(view.name)
            if plan is None:
                plan = views[view.name] = _ViewPlan(view.name, view.ttl_us)
            plan.slots.append(slot)
            agg = f.aggregation
            if agg in (Aggregation.IS_NEW, Aggregation.SECONDS_SINCE_LAST):
                plan.specials.append((agg, f.field or "", f.window_us, slot))
                continue
            window = plan.windows.get(f.window_us)
            if window is None:
                window = plan.windows[f.window_us] = _Window(f.window_us)
            if agg is Aggregation.COUNT and f.field is None:
                window.counts.append(slot)
            elif agg in (Aggregation.SUM, Aggregation.MEAN, Aggregation.MIN, Aggregation.MAX):
                window.numeric[f.field or ""].append((agg, slot))
            elif f.list_type is not None:
                window.sequences.append((f.field or "", f.n or 0, f.list_type, slot))
            else:
                window.over_values.append((agg, f.field or "", slot))
        self.views = list(views.values())
        self.on_demand = [
            _OnDemand(slot, resolved, tuple((d.name, slot_of[d.ref]) for d in registry.dependencies(resolved)))
            for slot, resolved in on_demand
        ]

    def compute(self, cuts: Mapping[str, HistoryCut], context: RequestContext, at_us: int) -> FeatureVector:
        """The selection's values at ``at_us``; see ``compute_features`` for the contract."""
        values: list[FeatureValue | None] = [None] * self.slots
        times: list[int | None] = [None] * self.slots
        statuses: list[Status] = [Status.MISSING] * self.slots
        for plan in self.views:
            cut = cuts[plan.name]
            _compute_view(plan, cut, context, at_us, values)
            last = cut.last_event_us
            if last is None:
                continue
            status = Status.EXPIRED if plan.ttl_us is not None and at_us - last > plan.ttl_us else Status.PRESENT
            for slot in plan.slots:
                if values[slot] is not None:
                    times[slot] = last
                    statuses[slot] = status
        for od in self.on_demand:
            values[od.slot], times[od.slot], statuses[od.slot] = _on_demand(
                od, values, times, statuses, context=context
            )
        n = self.size
        return FeatureVector(values[:n], times[:n], statuses[:n])


def _compute_view(
    plan: _ViewPlan, cut: HistoryCut, context: RequestContext, at_us: int, values: list[FeatureValue | None]
) -> None:
    history, end = cut.history, cut.end
    for window in plan.windows.values():
        start = cut.window_start(at_us, window.window_us)
        for slot in window.counts:
            values[slot] = float(end - start)
        for name, aggregations in window.numeric.items():
            column, all_numbers = history.numbers(name)
            numbers = column[start:end] if all_numbers else [v for v in column[start:end] if v is not None]
            _numeric(aggregations, numbers, values)  # type: ignore[arg-type]
        for agg, name, slot in window.over_values:
            values[slot] = _over_values(agg, history.column(name), start, end)
        for name, n, list_type, slot in window.sequences:
            if end == cut.start:
                values[slot] = None  # no history: MISSING
                continue
            typed = history.numbers(name)[0] if list_type is ListType.DOUBLE_LIST else history.texts(name)
            values[slot] = _last_n(typed, start, end, n)
    for agg, name, window_us, slot in plan.specials:
        if agg is Aggregation.IS_NEW:
            first = history.first_seen.get(name, {}).get(str(context[name]))
            values[slot] = 0.0 if first is not None and first < at_us else 1.0
        else:
            assert window_us is not None
            last = cut.last_event_us
            values[slot] = min(window_us, at_us - last) / 1e6 if last is not None else window_us / 1e6


def _numeric(
    aggregations: list[tuple[Aggregation, int]], numbers: list[float], values: list[FeatureValue | None]
) -> None:
    """Each of ``aggregations`` of a window's numbers into its slot: sum and mean exactly rounded (0.0
    when empty), min and max None when empty."""
    total: float | None = None
    for agg, slot in aggregations:
        if agg is Aggregation.SUM or agg is Aggregation.MEAN:
            if total is None:
                total = math.fsum(numbers)
            values[slot] = total if agg is Aggregation.SUM else total / len(numbers) if numbers else 0.0
        elif not numbers:
            values[slot] = None
        else:
            values[slot] = min(numbers) if agg is Aggregation.MIN else max(numbers)


def _over_values(agg: Aggregation, column: list[Scalar | None], start: int, end: int) -> Scalar | None:
    """Count, distinct count or last of the values ``column[start:end]`` has (None: no value)."""
    if agg is Aggregation.COUNT:
        return float(end - start - column[start:end].count(None))
    if agg is Aggregation.DISTINCT_COUNT:
        return float(len(set(column[start:end]) - {None}))
    for i in range(end - 1, start - 1, -1):
        if column[i] is not None:
            return column[i]
    return None


def _last_n(column: Sequence[Scalar | None], start: int, end: int, n: int) -> tuple[Scalar, ...]:
    """The newest ``n`` values ``column[start:end]`` has, oldest first (None: no value, passed over). The
    column is the field as the list's element type (``EntityHistory.texts`` or ``numbers``)."""
    picked: list[Scalar] = []
    for i in range(end - 1, start - 1, -1):
        item = column[i]
        if item is not None:
            picked.append(item)
            if len(picked) == n:
                break
    picked.reverse()
    return tuple(picked)


def _on_demand(
    od: _OnDemand,
    values: list[FeatureValue | None],
    times: list[int | None],
    statuses: list[Status],
    *,
    context: RequestContext,
) -> Result:
    env: dict[str, FeatureValue | None] = dict(context)
    for name, slot in od.deps:
        env[name] = values[slot]
    try:
        value = od.resolved.feature.compiled.evaluate(env)
    except ExpressionError as exc:
        if any(values[slot] is None for _, slot in od.deps):
            return None, None, Status.MISSING  # a stream feature it reads has no value (last of nothing ...)
        raise InvalidArgument(f"on-demand feature {od.resolved.ref}: {exc}") from exc
    if not od.deps:
        return value, None, Status.PRESENT  # of the request alone: always present, and no stored event behind it
    dep_times = [t for _, slot in od.deps if (t := times[slot]) is not None]
    if not dep_times:
        return value, None, Status.MISSING
    expired = any(statuses[slot] is Status.EXPIRED for _, slot in od.deps)
    return value, max(dep_times), Status.EXPIRED if expired else Status.PRESENT


def compute_features(
    features: Sequence[ResolvedFeature],
    cuts: Mapping[str, HistoryCut],
    context: RequestContext,
    at_us: int,
    registry: Registry,
) -> FeatureVector:
    """The values of ``features`` for a lookup at ``at_us`` (epoch microseconds).

    ``cuts`` maps view name to the entity's history in that view cut with ``before(at_us, ...)``; it
    must hold every view the features (and their on-demand dependencies) read, ``context`` every
    field ``registry.requirements(features)`` names (callers validate first; KeyError otherwise).
    Windows are the open interval ``(at_us - window, at_us)``. A value is MISSING when the entity
    has no history in the view (windowed values then hold their default: counts and sums 0, mean 0)
    or when there is no value (min/max/last of nothing); a ``last_n`` value is the tuple of the newest
    ``n`` values of its field in the window, oldest first (events ordered as everywhere here: by event
    time, then event id), empty (and PRESENT) when the entity has history but no such value in the
    window, None when it has no history (MISSING); EXPIRED when the entity's newest event is
    older than the view's ttl at ``at_us``. Event times as ``FeatureVector`` says. An on-demand
    value is MISSING when none of the stream features it reads has history, or when its expression
    fails while one of them has no value; any other failure of an on-demand expression (a wrong type
    in the request context, x/0 ...) raises InvalidArgument. The plan for ``features`` is built once
    per registry (``plan_for``).
    """
    return plan_for(features, registry).compute(cuts, context, at_us)


def plan_for(features: Sequence[ResolvedFeature], registry: Registry) -> FeaturePlan:
    """The (memoised) plan computing ``features`` under ``registry``."""
    return registry.memo(("plan", *(f.ref for f in features)), lambda: FeaturePlan(features, registry))
