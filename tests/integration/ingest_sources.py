"""The source catalog an in-process ingest pipeline validates against, opened as the service opens it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aimesh.core.sql import create_engine, migrate
from aimesh.ingest.app import MIGRATIONS, open_catalog, open_registry
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.settings import IngestSettings


@asynccontextmanager
async def ingest_catalog(settings: IngestSettings) -> AsyncIterator[SourceCatalog]:
    """The catalog of ``settings``' database (migrated, the sources file applied), open until the block ends."""
    engine = create_engine(settings.sqlalchemy_url())
    try:
        await migrate(engine, MIGRATIONS)
        yield await open_catalog(settings, await open_registry(settings, engine))
    finally:
        await engine.dispose()
