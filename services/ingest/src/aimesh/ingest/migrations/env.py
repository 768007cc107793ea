"""Alembic environment of the ingest service (run by ``aimesh.core.sql.migrate``)."""

from aimesh.core.sql import run_alembic_env
from aimesh.ingest.schema import metadata

run_alembic_env(metadata)
