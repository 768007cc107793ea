"""The banking pack's sources file, and the source catalog an in-process ingest pipeline validates
against, opened as the service opens it.

ingest ships no source definitions: the ingest integration tests publish the banking example's
generated events, so they register the banking pack's ``sources.yaml`` (``BANKING_SOURCES``), through
``INGEST_SOURCES_FILE`` or ``RegisterSource``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aimesh.examples.banking
from aimesh.core.sql import create_engine, migrate
from aimesh.ingest.app import MIGRATIONS, open_catalog, open_registry
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.settings import IngestSettings

BANKING_SOURCES = Path(aimesh.examples.banking.__file__).parent / "pack" / "sources.yaml"
"""The banking pack's source definitions (card transactions, chargebacks)."""


@asynccontextmanager
async def ingest_catalog(settings: IngestSettings) -> AsyncIterator[SourceCatalog]:
    """The catalog of ``settings``' database (migrated, the sources file applied), open until the block ends."""
    engine = create_engine(settings.sqlalchemy_url())
    try:
        await migrate(engine, MIGRATIONS)
        yield await open_catalog(settings, await open_registry(settings, engine))
    finally:
        await engine.dispose()
