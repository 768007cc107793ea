"""Shared pytest fixtures: where the real servers are, and a summary naming their versions.

Integration tests talk to the servers that `aimesh up --infra-only` started (endpoints overridable
by environment variables). A missing server is a failure with the command that fixes it, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str = field(default_factory=lambda: os.environ.get("AIMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    elasticsearch_url: str = field(default_factory=lambda: os.environ.get("AIMESH_ES_URL", "http://127.0.0.1:9200"))
    triton_grpc: str = field(default_factory=lambda: os.environ.get("AIMESH_TRITON_GRPC", "127.0.0.1:8001"))
    triton_http: str = field(default_factory=lambda: os.environ.get("AIMESH_TRITON_HTTP", "127.0.0.1:8000"))
    postgres_url: str = field(
        default_factory=lambda: os.environ.get(
            "AIMESH_POSTGRES_URL", "postgresql+asyncpg://aimesh:aimesh@127.0.0.1:5433/aimesh_test"
        )
    )


INFRA_VERSIONS: dict[str, str] = {}
"""Filled by integration fixtures: component name -> the version the server reported."""


@pytest.fixture(scope="session")
def endpoints() -> Endpoints:
    return Endpoints()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, index, group and table names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def record_infra_version() -> Iterator[object]:
    def record(name: str, version: str) -> None:
        INFRA_VERSIONS[name] = version

    yield record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if INFRA_VERSIONS:
        terminalreporter.section("real infrastructure under test")
        for name, version in sorted(INFRA_VERSIONS.items()):
            terminalreporter.write_line(f"{name}: {version}")
