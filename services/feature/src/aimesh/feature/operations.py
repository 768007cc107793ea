"""What the ``aimesh feature`` commands do, transport and printing aside (the CLI lives in aimesh.devstack).

``apply_file`` talks to a running feature service over gRPC (it owns the registry and schedules the
backfills); ``backfill`` and ``check`` open the service's database, online store and lake themselves
(FEATURE_* settings), so they work whether or not the service runs.
"""

from __future__ import annotations

from collections.abc import Callable

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.channels import open_caller_channel
from aimesh.core.sql import create_engine
from aimesh.feature.offline.backfill import BackfillResult
from aimesh.feature.service import FeatureStore
from aimesh.feature.serving.check import CheckReport, run_check
from aimesh.feature.settings import FeatureSettings


async def apply_file(
    address: str, document: str, *, dry_run: bool, timeout_s: float = 30.0
) -> feature_pb2.ApplyDefinitionsResponse:
    """Send a YAML definitions document to ApplyDefinitions at ``address``.

    Raises grpc.aio.AioRpcError with the service's status (INVALID_ARGUMENT naming the path,
    FAILED_PRECONDITION naming breaking changes, ABORTED naming definitions a writer outside the
    registry lock stored meanwhile (apply again), UNAVAILABLE ...). Other replicas on the service's
    database serve the applied definitions within their FEATURE_REGISTRY_REFRESH_SECONDS.
    """
    async with open_caller_channel(address) as channel:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        response: feature_pb2.ApplyDefinitionsResponse = await stub.ApplyDefinitions(
            feature_pb2.ApplyDefinitionsRequest(document=document, dry_run=dry_run), timeout=timeout_s
        )
        return response


async def _opened(settings: FeatureSettings) -> FeatureStore:
    features = FeatureStore(
        create_engine(settings.sqlalchemy_url()),
        settings.lake_root,
        cache_entries=0,
        online_store_url=settings.online_store_url,
    )
    await features.start(None)
    return features


async def backfill(
    settings: FeatureSettings, view: str, *, on_progress: Callable[[int], None] | None = None
) -> BackfillResult:
    """Backfill ``view`` of the registry in the service's database from its lake (idempotent)."""
    features = await _opened(settings)
    try:
        return await features.backfill(view, on_progress=on_progress)
    finally:
        await features.stop()
        await features.engine.dispose()


async def check(settings: FeatureSettings, *, samples: int, seed: int | None = None) -> CheckReport:
    """Run the consistency check on the service's database and lake."""
    features = await _opened(settings)
    try:
        return await run_check(features, samples=samples, seed=seed)
    finally:
        await features.stop()
        await features.engine.dispose()
