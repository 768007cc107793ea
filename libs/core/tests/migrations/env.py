import importlib.util
from pathlib import Path

from aimesh.core.sql import run_alembic_env

_spec = importlib.util.spec_from_file_location("core_test_schema", Path(__file__).with_name("schema.py"))
assert _spec and _spec.loader
_schema = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_schema)

run_alembic_env(_schema.metadata)
