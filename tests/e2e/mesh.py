"""A private mesh for an end-to-end test: the five services on free ports, with names unique to the run.

``running_mesh`` starts the five services as ``aimesh up`` runs them (one process each) on free ports,
with topics, consumer groups, data directory, Triton model name and Elasticsearch indices unique to the
run, so a test never touches the demo's data; it stops them and removes what they left in the shared
Triton and Elasticsearch on exit. A scenario names its upstream sources (``sources``: the ingest source
name -> the key of its topic in ``MeshUnderTest.topics``); every other topic is the platform's.
With ``postgres_services`` those services keep their SQL state in a schema of their own in the stack's
PostgreSQL (dropped on exit) instead of the default SQLite file.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import tritonclient.grpc.aio as triton
from elasticsearch import AsyncElasticsearch

from aimesh.core.channels import TOKEN_FILE_ENV
from aimesh.devstack import credentials
from aimesh.devstack.paths import Paths
from aimesh.devstack.services import SERVICE_NAMES, Service
from aimesh.devstack.triton import model_repository
from aimesh.examples.banking.scenario import MeshAddress

KAFKA = "127.0.0.1:9092"
TRITON_GRPC = "127.0.0.1:8001"
ELASTICSEARCH = "http://127.0.0.1:9200"
POSTGRES = "postgresql://aimesh:aimesh@127.0.0.1:5433/aimesh_test"
"""The stack's test database (``aimesh up --infra-only``); the role may create schemas, not databases."""
PLATFORM_TOPICS = ("records", "dlq", "runs", "registry", "predictions", "alerts", "logs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MeshUnderTest:
    """A running private mesh: ``address`` for the scenario's clients, ``topics`` by key (the sources' keys
    and ``PLATFORM_TOPICS``), ``paths`` (its home: data, lake, logs), the services' ports, and
    ``triton_model`` (a Triton model name unique to the run, for the scenario's trained version);
    ``postgres_schema``: the PostgreSQL schema of the ``postgres_services`` ("" when there are none)."""

    unique: str
    address: MeshAddress
    topics: dict[str, str]
    paths: Paths
    grpc_ports: dict[str, int]
    admin_ports: dict[str, int]
    triton_model: str
    postgres_schema: str = ""

    @property
    def lake(self) -> Path:
        return self.paths.home / "data" / "lake"


def postgres_url(schema: str) -> str:
    """A SQLAlchemy URL of the stack's test database whose connections use ``schema`` (asyncpg reads the
    ``search_path`` of its DSN into the session's server settings)."""
    return f"postgresql+asyncpg://aimesh:aimesh@127.0.0.1:5433/aimesh_test?dsn={POSTGRES}%3Fsearch_path%3D{schema}"


def mesh_environment(
    unique: str,
    grpc_ports: Mapping[str, int],
    sources: Mapping[str, str],
    database_urls: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The topics of a run (key -> name) and each service's environment (``<NAME>_...`` variables).

    ``sources`` maps each ingest source to the key of its topic (``SOURCE_TOPICS`` overrides the topic
    its registration names); ``database_urls`` gives services a ``<NAME>_DATABASE_URL``.
    """
    t = f"test.e2e.{unique}"
    topics = {key: f"{t}.src.{key}" for key in sources.values()}
    topics |= {key: f"{t}.{key}" for key in PLATFORM_TOPICS}
    feature = f"127.0.0.1:{grpc_ports['feature']}"
    env = {
        "ingest": {
            "SOURCE_TOPICS": orjson.dumps({source: topics[key] for source, key in sources.items()}).decode(),
            "RECORDS_TOPIC": topics["records"],
            "DLQ_TOPIC": topics["dlq"],
            "PII_SECRET": f"e2e-secret-{unique}",
        },
        "feature": {"TOPICS": orjson.dumps([topics["records"]]).decode()},
        "training": {
            "TOPICS": orjson.dumps([topics["alerts"]]).decode(),
            "RUNS_TOPIC": topics["runs"],
            "REGISTRY_TOPIC": topics["registry"],
            "FEATURE_GRPC": feature,
        },
        "inference": {
            "TOPICS": orjson.dumps([topics["registry"]]).decode(),
            "PREDICTIONS_TOPIC": topics["predictions"],
            "FEATURE_ADDRESS": feature,
        },
        "monitor": {
            "TOPICS": orjson.dumps([topics["predictions"], topics["logs"]]).decode(),
            "REGISTRY_TOPIC": topics["registry"],
            "ALERTS_TOPIC": topics["alerts"],
            "INDEX_PREFIX": f"e2e-{unique}",
        },
    }
    for name, url in (database_urls or {}).items():
        env[name]["DATABASE_URL"] = url
    for values in env.values():
        values["SHIP_LOGS_TOPIC"] = topics["logs"]
    return topics, {name: {f"{name.upper()}_{k}": v for k, v in values.items()} for name, values in env.items()}


@contextmanager
def running_mesh(
    home: Path,
    *,
    sources: Mapping[str, str],
    streams: Mapping[Any, str],
    model_prefix: str,
    postgres_services: Iterable[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[MeshUnderTest]:
    """Start the five services with their data under ``home``, yield the mesh, then stop them and clean up.

    ``streams`` maps a pack's stream enum to a topic key (``MeshAddress.topics``, what the banking
    scenario publishes to). The test's clients send the stack's demo token while the mesh runs.
    ``extra_env`` is added to every service's environment (e.g. ``AIMESH_OTLP_ENDPOINT``).
    """
    unique = uuid.uuid4().hex[:8]
    paths = Paths(home=home, repo=Paths.default().repo)
    grpc_ports = {name: free_port() for name in SERVICE_NAMES}
    admin_ports = {name: free_port() for name in SERVICE_NAMES}
    schema = f"e2e_{unique}"
    databases = {name: postgres_url(schema) for name in postgres_services}
    if databases:
        asyncio.run(_postgres(f'CREATE SCHEMA "{schema}"'))
    topics, env = mesh_environment(unique, grpc_ports, sources, databases)
    services = [
        Service(
            paths,
            name,
            grpc_port=grpc_ports[name],
            admin_port=admin_ports[name],
            kafka_bootstrap=KAFKA,
            extra_env={**env[name], **(extra_env or {})},
        )
        for name in SERVICE_NAMES
    ]
    auth = pytest.MonkeyPatch()  # the services run with the stack's credentials; the test's clients send its demo token
    auth.setenv(TOKEN_FILE_ENV, str(credentials.ensure(paths).demo_token))
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_ready(120)
        address = MeshAddress(
            topics={stream: topics[key] for stream, key in streams.items()},
            ingest_admin=f"http://127.0.0.1:{admin_ports['ingest']}",
            feature_admin=f"http://127.0.0.1:{admin_ports['feature']}",
            ingest_grpc=f"127.0.0.1:{grpc_ports['ingest']}",
            feature_grpc=f"127.0.0.1:{grpc_ports['feature']}",
            training_grpc=f"127.0.0.1:{grpc_ports['training']}",
            inference_grpc=f"127.0.0.1:{grpc_ports['inference']}",
            monitor_grpc=f"127.0.0.1:{grpc_ports['monitor']}",
            index_prefix=f"e2e-{unique}",
        )
        triton_model = f"{model_prefix}_e2e_{unique}"
        yield MeshUnderTest(
            unique, address, topics, paths, grpc_ports, admin_ports, triton_model, schema if databases else ""
        )
    finally:
        for service in reversed(services):
            service.stop()
        auth.undo()
        asyncio.run(remove_what_the_test_left(unique))
        if databases:
            asyncio.run(_postgres(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def _postgres(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def postgres_tables(schema: str) -> set[str]:
    """The tables of ``schema`` in the stack's test database."""
    connection = await asyncpg.connect(POSTGRES)
    try:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        return {row["table_name"] for row in rows}
    finally:
        await connection.close()


async def remove_what_the_test_left(unique: str) -> None:
    """Unload and delete every Triton model of this run (names end in ``unique``) and drop its indices.

    Runs after the services stopped: while inference runs, its model reconciler reloads what is unloaded.
    """
    client = triton.InferenceServerClient(TRITON_GRPC)
    try:
        index = await client.get_model_repository_index(as_json=True)
        for model in index.get("models", []):
            if model["name"].endswith(unique):
                await client.unload_model(model["name"])
                shutil.rmtree(model_repository(Paths.default()) / model["name"], ignore_errors=True)
    finally:
        await client.close()
    async with AsyncElasticsearch(ELASTICSEARCH) as es:
        indices = await es.indices.get(index=f"e2e-{unique}-*", allow_no_indices=True)
        if indices:  # a delete must name its indices (action.destructive_requires_name)
            await es.indices.delete(index=",".join(indices))


async def predictions_by_request(es: AsyncElasticsearch, prefix: str, request_ids: list[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    """The indexed Prediction documents of ``request_ids`` (``<prefix>-predictions``), by request id."""
    index = f"{prefix}-predictions"
    await es.indices.refresh(index=index)
    reply = await es.search(index=index, query={"terms": {"request_id": request_ids}}, size=len(request_ids) + 10)
    return {hit["_source"]["request_id"]: hit["_source"] for hit in reply["hits"]["hits"]}


async def indexed_predictions(
    elasticsearch_url: str, prefix: str, request_ids: list[str], limit_s: float = 60
) -> dict[str, dict]:  # type: ignore[type-arg]
    """``predictions_by_request``, polled until every one of ``request_ids`` is indexed or ``limit_s`` passed."""
    async with AsyncElasticsearch(elasticsearch_url) as es:
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            found = await predictions_by_request(es, prefix, request_ids)
            if len(found) == len(request_ids) or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.5)
