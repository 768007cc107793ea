"""The consistency check: online values versus offline (lake) retrieval for sampled entities and times.

For every stream-fed view it samples entities of the online store and, per entity, a time between its
newest event and now (where online and offline must agree exactly: both cut the same history), asks
for its features (``is_new`` ones aside: they compare with a request's context)
GetOnlineFeatures and GetHistoricalFeatures the same rows, and reports every differing value or status.
Differences mean a bug, an event skipped online as too late, or a lake / stream lag at check time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.signature import scalar
from aimesh.feature.definitions.registry import RegistryHolder
from aimesh.feature.definitions.specs import Aggregation
from aimesh.feature.online.protocol import OnlineStateStore
from aimesh.feature.serving.retrieval import HistoricalRetrieval, OnlineRetrieval, now_us


class Checked(Protocol):
    """What the check reads (``service.FeatureStore`` has it): the online store, both retrieval paths and
    the served registry."""

    @property
    def store(self) -> OnlineStateStore: ...

    @property
    def online(self) -> OnlineRetrieval: ...

    @property
    def historical(self) -> HistoricalRetrieval: ...

    @property
    def registry(self) -> RegistryHolder: ...


@dataclass(frozen=True)
class Mismatch:
    """One value that differs: where, and both sides as text."""

    view: str
    entity_id: str
    at_us: int
    feature: str
    online: str
    offline: str


@dataclass
class CheckReport:
    """Values compared per view, and the mismatches found."""

    compared: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _text(value: feature_pb2.FeatureValue) -> str:
    shown = "-" if value.value.WhichOneof("kind") is None else repr(scalar(value.value))
    return f"{shown} ({feature_pb2.FeatureStatus.Name(value.status).removeprefix('FEATURE_STATUS_').lower()})"


async def _sample(features: Checked, view: str, samples: int, rng: random.Random) -> list[tuple[str, int]]:
    entities = sorted(await features.store.newest_by_entity(view))
    return rng.sample(entities, min(samples, len(entities)))


async def run_check(
    features: Checked,
    *,
    samples: int = 50,
    seed: int | None = None,
    clock_us: Callable[[], int] = now_us,
) -> CheckReport:
    """Compare online and offline values of ``samples`` entities per stream-fed view (see module doc)."""
    rng = random.Random(seed)  # noqa: S311  # sampling, not cryptography
    report = CheckReport()
    registry = features.registry.current
    now = clock_us()
    for view in sorted((v for v in registry.views.values() if not v.on_demand), key=lambda v: v.name):
        picked = await _sample(features, view.name, samples, rng)
        report.compared[view.name] = 0
        if not picked:
            continue
        rows = []
        for entity_id, newest in picked:
            ts = Timestamp()
            ts.FromMicroseconds(rng.randint(newest + 1, max(newest + 1, now)))
            rows.append(feature_pb2.EntityRow(entity_ids={view.entity: entity_id}, timestamp=ts))
        refs = [f"{view.name}:{f.name}" for f in view.features if f.aggregation is not Aggregation.IS_NEW]
        online = await features.online.get(feature_pb2.GetOnlineFeaturesRequest(features=refs, entity_rows=rows))
        offline = sorted(
            [
                r
                async for chunk in features.historical.stream(
                    feature_pb2.GetHistoricalFeaturesRequest(features=refs, entity_rows=rows)
                )
                for r in chunk.rows
            ],
            key=lambda r: r.row_index,
        )
        for row, on, off in zip(rows, online.rows, offline, strict=True):
            for name, a, b in zip(online.feature_names, on.values, off.values, strict=True):
                report.compared[view.name] += 1
                if a != b:
                    report.mismatches.append(
                        Mismatch(view.name, on.entity_id, row.timestamp.ToMicroseconds(), name, _text(a), _text(b))
                    )
    return report
