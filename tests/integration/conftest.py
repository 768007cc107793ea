"""Fixtures for tests against the real servers started by `aimesh up --infra-only`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from aimesh.devstack.kafka import Kafka
from aimesh.devstack.paths import Paths

UP_HINT = "start the local infrastructure first: `aimesh up --infra-only` (or `make up-infra`)"


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
