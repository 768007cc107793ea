"""Alembic environment of the feature service's online store (run by ``aimesh.core.sql.migrate``)."""

from aimesh.core.sql import run_alembic_env
from aimesh.feature.schema import metadata

run_alembic_env(metadata)
