"""GetOnlineFeatures and GetHistoricalFeatures, transport-free: protobuf requests in, protobuf responses out.

Both validate rows the same way (``rows.parse_rows``), cut histories the same way
(``EntityHistory.before``) and compute with the same plan (``aggregation.plan_for``); they differ
only in where the histories come from: the online store's current state, or the lake.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.core.events import PoisonEvent
from aimesh.feature import metrics
from aimesh.feature.definitions.registry import Registry, RegistryHolder, ResolvedFeature
from aimesh.feature.definitions.specs import FeatureViewSpec
from aimesh.feature.history import EMPTY_HISTORY, EntityHistory, HistoryCut, StateKey
from aimesh.feature.offline.lake import entity_filter, needed_columns, scan, timeline
from aimesh.feature.online.protocol import OnlineStateStore
from aimesh.feature.records import ViewEvent, view_event
from aimesh.feature.serving.aggregation import plan_for
from aimesh.feature.serving.rows import LookupRow, encode_feature_values, parse_rows

MAX_ONLINE_ROWS = 1000
MAX_HISTORICAL_ROWS = 100_000
HISTORICAL_CHUNK_ROWS = 500
HISTORICAL_GROUP_ENTITIES = 5000
HISTORICAL_GROUP_ROWS = 20_000
"""Offline retrieval reads the lake for at most this many entity ids and answers at most this many rows
at a time (its memory bound)."""
_ONLINE_VALUES = feature_pb2.OnlineFeatureRow.DESCRIPTOR.fields_by_name["values"].number
_HISTORICAL_VALUES = feature_pb2.HistoricalFeatureRow.DESCRIPTOR.fields_by_name["values"].number


def now_us() -> int:
    return time.time_ns() // 1000


def _cuts(
    views: Sequence[FeatureViewSpec], row: LookupRow, at_us: int, histories: Mapping[StateKey, EntityHistory]
) -> dict[str, HistoryCut]:
    """Each view's history of the row's entity as seen at ``at_us`` (empty where there is none)."""
    return {
        view.name: histories.get((view.name, row.entities[view.entity]), EMPTY_HISTORY).before(at_us, view.retention_us)
        for view in views
    }


class OnlineRetrieval:
    """Serves GetOnlineFeatures from the online store."""

    def __init__(
        self, store: OnlineStateStore, registry: RegistryHolder, *, clock_us: Callable[[], int] = now_us
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock_us = clock_us

    async def get(self, request: feature_pb2.GetOnlineFeaturesRequest) -> feature_pb2.GetOnlineFeaturesResponse:
        """Rows answered in request order; one store read for all rows' entities.

        Raises NotFound (unknown feature service / feature), InvalidArgument (missing entity id or
        context field), ResourceExhausted (more than ``MAX_ONLINE_ROWS`` rows).
        """
        started = time.perf_counter()
        try:
            registry = self.registry.current
            features = registry.select(request.feature_service, request.features)
            rows = parse_rows(
                request.entity_ids, request.entity_rows, registry.requirements(features), max_rows=MAX_ONLINE_ROWS
            )
            views = registry.views_read(features)
            states = await self.store.load({(v.name, row.entities[v.entity]) for row in rows for v in views})
            now = self.clock_us()
            response = feature_pb2.GetOnlineFeaturesResponse(feature_names=registry.column_names(features))
            plan = plan_for(features, registry)
            for row in rows:
                at_us = row.at_us if row.at_us is not None else now
                vector = plan.compute(_cuts(views, row, at_us, states), row.context, at_us)
                response.rows.add(entity_id=row.entity_id, row_index=row.index).MergeFromString(
                    encode_feature_values(_ONLINE_VALUES, vector)
                )
            return response
        finally:
            metrics.ONLINE_LATENCY.observe(time.perf_counter() - started)


def _entity_groups(rows: Sequence[LookupRow], max_entities: int, max_rows: int) -> Iterator[list[LookupRow]]:
    """Rows sorted by their entity ids, cut into groups naming at most ``max_entities`` ids and holding
    at most ``max_rows`` rows (one row always fits, however many entities it names)."""
    ordered = sorted(rows, key=lambda r: sorted(r.entities.items()))
    group: list[LookupRow] = []
    ids: set[tuple[str, str]] = set()
    for row in ordered:
        mine = set(row.entities.items())
        if group and (len(group) >= max_rows or len(ids | mine) > max_entities):
            yield group
            group, ids = [], set()
        group.append(row)
        ids |= mine
    if group:
        yield group


def lake_timelines(
    lake_root: Path, registry: Registry, views: Sequence[FeatureViewSpec], rows: Sequence[LookupRow], before_us: int
) -> dict[StateKey, EntityHistory]:
    """Timelines of the rows' entities in ``views`` from the lake (events before ``before_us``); blocking."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for name, entity_id in row.entities.items():
            wanted[name].add(entity_id)
    grouped: dict[StateKey, list[ViewEvent]] = defaultdict(list)
    by_source: dict[str, list[FeatureViewSpec]] = defaultdict(list)
    for view in views:
        by_source[view.source].append(view)
    for source, source_views in by_source.items():
        where = entity_filter(source_views, registry, wanted)
        for batch in scan(lake_root, source, needed_columns(source_views, registry), where=where, before_us=before_us):
            for record in batch:
                for view in source_views:
                    try:
                        ve = view_event(view, registry.entities[view.entity], record)
                    except PoisonEvent:
                        continue
                    if ve.entity_id in wanted[view.entity]:
                        grouped[(view.name, ve.entity_id)].append(ve)
    return {key: timeline(events) for key, events in grouped.items()}


class HistoricalRetrieval:
    """Serves GetHistoricalFeatures from the lake, one entity group at a time."""

    def __init__(
        self,
        lake_root: Path,
        registry: RegistryHolder,
        *,
        chunk_rows: int = HISTORICAL_CHUNK_ROWS,
        group_entities: int = HISTORICAL_GROUP_ENTITIES,
        group_rows: int = HISTORICAL_GROUP_ROWS,
    ) -> None:
        self.lake_root = lake_root
        self.registry = registry
        self.chunk_rows = chunk_rows
        self.group_entities = group_entities
        self.group_rows = group_rows

    async def stream(
        self, request: feature_pb2.GetHistoricalFeaturesRequest
    ) -> AsyncIterator[feature_pb2.GetHistoricalFeaturesResponse]:
        """Point-in-time rows, ``chunk_rows`` per message, feature_names on the first; each row carries
        its request position (``row_index``): rows come group by group, not in request order.

        Each row uses only events strictly before its timestamp (required). Rows are grouped by entity
        (at most ``group_entities`` entity ids and ``group_rows`` rows per group); the lake is read once
        per group and a group's answers are sent before the next group is read, so memory holds one
        group's events and answers (besides the request itself), however many rows are asked for.
        Raises NotFound, InvalidArgument (missing timestamp, entity id or context field),
        ResourceExhausted (more than ``MAX_HISTORICAL_ROWS`` rows) before the first message.
        """
        registry = self.registry.current
        features = registry.select(request.feature_service, request.features)
        rows = parse_rows((), request.entity_rows, registry.requirements(features), max_rows=MAX_HISTORICAL_ROWS)
        for row in rows:
            if row.at_us is None:
                raise InvalidArgument(f"entity_rows[{row.index}]: timestamp missing (the as-of time is required)")
        views = registry.views_read(features)
        names = registry.column_names(features)
        for number, group in enumerate(_entity_groups(rows, self.group_entities, self.group_rows)):
            answers = await asyncio.to_thread(self._group, registry, features, views, group)
            for start in range(0, len(answers), self.chunk_rows):
                chunk = feature_pb2.GetHistoricalFeaturesResponse(rows=answers[start : start + self.chunk_rows])
                if number == 0 and start == 0:
                    chunk.feature_names.extend(names)
                metrics.HISTORICAL_ROWS.inc(len(chunk.rows))
                yield chunk

    def _group(
        self,
        registry: Registry,
        features: Sequence[ResolvedFeature],
        views: Sequence[FeatureViewSpec],
        rows: Sequence[LookupRow],
    ) -> list[feature_pb2.HistoricalFeatureRow]:
        """The group's answers in request order (blocking: run in a worker thread)."""
        before = max(row.at_us or 0 for row in rows)
        lines = lake_timelines(self.lake_root, registry, views, rows, before) if views else {}
        plan = plan_for(features, registry)
        out = []
        for row in sorted(rows, key=lambda r: r.index):
            assert row.at_us is not None
            vector = plan.compute(_cuts(views, row, row.at_us, lines), row.context, row.at_us)
            answer = feature_pb2.HistoricalFeatureRow(
                row_index=row.index, entity_id=row.entity_id, timestamp=row.timestamp()
            )
            answer.MergeFromString(encode_feature_values(_HISTORICAL_VALUES, vector))
            out.append(answer)
        return out
