"""The indexing benchmark's documents: seeded, realistic ``Prediction`` events through ``prediction_document``.

Four model versions (one of them ranking), 24 features, two entity ids, a tenant and a trace id each;
the ranking model's predictions (a quarter) add 20 items, 5 context items and 10 excluded items; 5 %
name two missing features and a tenth are shadow predictions. The same seed gives the same documents.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from aimesh.api.inference.v1 import events_pb2 as inference_events
from aimesh.api.inference.v1 import inference_pb2
from aimesh.monitor.documents import Document, prediction_document

MODELS = (("card-fraud", 7), ("card-fraud", 8), ("merchant-risk", 3), ("next-item", 12))
FEATURES = tuple(
    f"{group}_{window}"
    for group in ("txn_count", "amount_sum", "amount_mean")
    for window in ("10m", "1h", "6h", "1d", "7d", "30d", "90d", "365d")
)
ROUTES = (inference_pb2.ROUTE_CHAMPION,) * 8 + (inference_pb2.ROUTE_CANARY, inference_pb2.ROUTE_SHADOW)


def predictions(count: int, seed: int) -> list[inference_events.Prediction]:
    """``count`` predictions over the hour before a fixed time (2026-01-01 UTC), the same for one seed."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC) - timedelta(hours=1)
    out: list[inference_events.Prediction] = []
    for i in range(count):
        name, version = rng.choice(MODELS)
        route = rng.choice(ROUTES)
        p = inference_events.Prediction(
            request_id=f"req-{seed}-{i:08d}",
            event_id=f"evt-{seed}-{i:08d}",
            model_name=name,
            model_version=version,
            score=rng.random(),
            features={f: round(rng.lognormvariate(2.0, 1.5), 4) for f in FEATURES},
            shadow=route == inference_pb2.ROUTE_SHADOW,
            route=route,
            alias="production" if route == inference_pb2.ROUTE_CHAMPION else "candidate",
            entity_ids={"card_id": f"card-{rng.randrange(50_000):06d}", "merchant_id": f"m-{rng.randrange(5_000):05d}"},
            feature_freshness_seconds=round(rng.expovariate(1 / 30), 3),
            missing_features=rng.sample(FEATURES, 2) if rng.random() < 0.05 else [],
            tenant=f"tenant-{rng.randrange(4)}",
        )
        if name == "next-item":
            p.items.extend(f"item-{rng.randrange(100_000):06d}" for _ in range(20))
            p.context_items.extend(f"item-{rng.randrange(100_000):06d}" for _ in range(5))
            p.exclude_items.extend(f"item-{rng.randrange(100_000):06d}" for _ in range(10))
            p.k = 20
        p.time.FromDatetime(start + timedelta(milliseconds=i * 3_600_000 // max(count, 1)))
        p.latency.FromNanoseconds(int(rng.lognormvariate(15.0, 0.6)))
        out.append(p)
    return out


def documents(count: int, seed: int) -> list[tuple[str, Document]]:
    """(document id, document) of ``predictions(count, seed)``, each with a trace id."""
    rng = random.Random(seed + 1)
    return [(p.event_id, prediction_document(p, f"{rng.getrandbits(128):032x}")) for p in predictions(count, seed)]
