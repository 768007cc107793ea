"""Fixtures for tests against the real servers started by `aimesh up --infra-only`.

Auth is on in every integration test (``dev_auth``, autouse): the session's ``DevAuthority`` keys,
policy and a ``demo``-tenant token are exported as ``AIMESH_AUTH_*``, which every service settings
class takes as its defaults and ``aimesh.core.channels.open_caller_channel`` sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from aimesh.core.devauth import DEMO_TENANT, DevAuthority
from aimesh.devstack.kafka import Kafka
from aimesh.devstack.paths import Paths

UP_HINT = "start the local infrastructure first: `aimesh up --infra-only` (or `make up-infra`)"


@pytest.fixture(scope="session")
def dev_authority(tmp_path_factory: pytest.TempPathFactory) -> DevAuthority:
    """The session's issuer: servers verify with its JWKS and policy, clients send its demo token."""
    authority = DevAuthority.create(tmp_path_factory.mktemp("auth"))
    authority.write_token("demo", "integration-tests", tenant=DEMO_TENANT)
    return authority


@pytest.fixture(autouse=True)
def dev_auth(dev_authority: DevAuthority, monkeypatch: pytest.MonkeyPatch) -> DevAuthority:
    """Auth on for each integration test (``AIMESH_AUTH_*`` set for the test only)."""
    for name, value in dev_authority.environment(token_file=dev_authority.directory / "demo.token").items():
        monkeypatch.setenv(name, value)
    return dev_authority


@pytest.fixture
async def kafka_admin(endpoints, record_infra_version) -> AsyncIterator[AIOKafkaAdminClient]:  # type: ignore[no-untyped-def]
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
    except KafkaError as exc:
        pytest.fail(f"Kafka at {endpoints.kafka_bootstrap} is not reachable ({exc}); {UP_HINT}")
    health = await asyncio.to_thread(Kafka(Paths.default()).health)
    record_infra_version("Apache Kafka", health.version or "unknown")
    try:
        yield admin
    finally:
        await admin.close()


@pytest.fixture
async def make_topic(kafka_admin: AIOKafkaAdminClient, unique: str) -> AsyncIterator[Callable[..., object]]:
    """Create uniquely named topics for one test; deleted afterwards."""
    created: list[str] = []

    async def make(name: str, partitions: int = 3) -> str:
        topic = f"test.{name}.{unique}"
        await kafka_admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        created.append(topic)
        return topic

    yield make
    if created:
        await kafka_admin.delete_topics(created)
