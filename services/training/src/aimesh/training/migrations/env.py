"""Alembic environment of the training service (see ``aimesh.core.sql.run_alembic_env``)."""

from aimesh.core.sql import run_alembic_env
from aimesh.training.schema import metadata

run_alembic_env(metadata)
