"""GetOnlineFeatures and GetHistoricalFeatures, transport-free: protobuf requests in, protobuf responses out.

Both validate rows the same way (``rows.parse_rows``) and compute with the same function
(``aggregation.compute_features``); they differ only in where the histories come from: the online
store's current state, or the lake cut at each row's time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.feature import metrics
from aimesh.feature.aggregation import EMPTY_HISTORY, compute_features, requirements
from aimesh.feature.definitions import CARD, CUSTOMER, REGISTRY, Registry, ResolvedFeature
from aimesh.feature.offline import EntityTimeline, read_transactions, timelines
from aimesh.feature.rows import LookupRow, feature_values, parse_rows
from aimesh.feature.store import EntityRef, OnlineStore

MAX_ONLINE_ROWS = 1000
MAX_HISTORICAL_ROWS = 100_000
HISTORICAL_CHUNK_ROWS = 500


def _now_us() -> int:
    return time.time_ns() // 1000


def _entity_refs(rows: list[LookupRow]) -> set[EntityRef]:
    return {(name, entity_id) for row in rows for name, entity_id in row.entities.items()}


class OnlineRetrieval:
    """Serves GetOnlineFeatures from the online store."""

    def __init__(
        self, store: OnlineStore, *, registry: Registry = REGISTRY, clock_us: Callable[[], int] = _now_us
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
            features = self.registry.select(request.feature_service, request.features)
            rows = parse_rows(
                request.entity_ids, request.entity_rows, requirements(features, self.registry), max_rows=MAX_ONLINE_ROWS
            )
            states = await self.store.load(_entity_refs(rows))
            now = self.clock_us()
            response = feature_pb2.GetOnlineFeaturesResponse(feature_names=[f.name for f in features])
            for row in rows:
                at_us = row.at_us if row.at_us is not None else now
                histories = {name: states[(name, eid)].before(at_us) for name, eid in row.entities.items()}
                vector = compute_features(features, histories, row.context, at_us, self.registry)
                response.rows.append(
                    feature_pb2.OnlineFeatureRow(
                        entity_id=row.entity_id, row_index=row.index, values=feature_values(vector)
                    )
                )
            return response
        finally:
            metrics.ONLINE_LATENCY.observe(time.perf_counter() - started)


class HistoricalRetrieval:
    """Serves GetHistoricalFeatures from the lake."""

    def __init__(
        self, lake_root: Path, *, registry: Registry = REGISTRY, chunk_rows: int = HISTORICAL_CHUNK_ROWS
    ) -> None:
        self.lake_root = lake_root
        self.registry = registry
        self.chunk_rows = chunk_rows

    async def stream(
        self, request: feature_pb2.GetHistoricalFeaturesRequest
    ) -> AsyncIterator[feature_pb2.GetHistoricalFeaturesResponse]:
        """Point-in-time rows in request order, ``chunk_rows`` per message; feature_names on the first.

        Each row uses only events strictly before its timestamp (required). Raises NotFound,
        InvalidArgument (missing timestamp, entity id or context field), ResourceExhausted (more than
        ``MAX_HISTORICAL_ROWS`` rows) before the first message.
        """
        features = self.registry.select(request.feature_service, request.features)
        rows = parse_rows((), request.entity_rows, requirements(features, self.registry), max_rows=MAX_HISTORICAL_ROWS)
        for row in rows:
            if row.at_us is None:
                raise InvalidArgument(f"entity_rows[{row.index}]: timestamp missing (the as-of time is required)")
        refs = _entity_refs(rows)
        cards = {eid for name, eid in refs if name == CARD}
        customers = {eid for name, eid in refs if name == CUSTOMER}
        latest = max(row.at_us for row in rows if row.at_us is not None)
        txns = await asyncio.to_thread(read_transactions, self.lake_root, cards, customers, before_us=latest)
        lines = await asyncio.to_thread(timelines, txns, cards, customers)
        names = [f.name for f in features]
        for start in range(0, len(rows), self.chunk_rows):
            chunk = await asyncio.to_thread(self._chunk, features, rows[start : start + self.chunk_rows], lines)
            if start == 0:
                chunk.feature_names.extend(names)
            metrics.HISTORICAL_ROWS.inc(len(chunk.rows))
            yield chunk

    def _chunk(
        self,
        features: tuple[ResolvedFeature, ...],
        rows: list[LookupRow],
        lines: Mapping[EntityRef, EntityTimeline],
    ) -> feature_pb2.GetHistoricalFeaturesResponse:
        chunk = feature_pb2.GetHistoricalFeaturesResponse()
        for row in rows:
            assert row.at_us is not None
            histories = {
                name: lines[(name, eid)].history_before(row.at_us) if (name, eid) in lines else EMPTY_HISTORY
                for name, eid in row.entities.items()
            }
            vector = compute_features(features, histories, row.context, row.at_us, self.registry)
            chunk.rows.append(
                feature_pb2.HistoricalFeatureRow(
                    row_index=row.index,
                    entity_id=row.entity_id,
                    timestamp=row.timestamp(),
                    values=feature_values(vector),
                )
            )
        return chunk
