"""``apply_sources`` against a real in-process IngestService (gRPC on 127.0.0.1, SQLite registry, no Kafka):
created / updated / unchanged with versions, the dry run, breaking changes refused before anything is stored."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import yaml

from aimesh.api.ingest.v1 import ingest_pb2_grpc
from aimesh.core.errors import FailedPrecondition, InvalidArgument
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.sql import create_engine, migrate
from aimesh.core.testing import RecordingSender
from aimesh.ingest.api import IngestServiceApi
from aimesh.ingest.app import MIGRATIONS, SERVICE_NAME
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.operations import Action, SourceChange, apply_sources
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.push import PushIntake, PushLimits
from aimesh.ingest.registry import SourceRegistry
from aimesh.ingest.settings import IngestSettings

SOURCES_FILE = Path(__file__).parent / "fixtures" / "sources.yaml"


class Service:
    def __init__(self, address: str, registry: SourceRegistry, catalog: SourceCatalog) -> None:
        self.address, self.registry, self.catalog = address, registry, catalog


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
    await migrate(engine, MIGRATIONS)
    registry = SourceRegistry(engine)
    catalog = SourceCatalog(registry, Tokenizer("s"))
    await catalog.refresh()
    api = IngestServiceApi(
        PushIntake(catalog, RecordingSender(), dlq_topic="dlq", limits=PushLimits()), registry, catalog
    )
    server = GrpcServer(
        IngestSettings(data_dir=tmp_path, grpc_port=0),
        [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(api, s)],
        [SERVICE_NAME],
    )
    await server.server.start()
    try:
        yield Service(f"127.0.0.1:{server.port}", registry, catalog)
    finally:
        await server.server.stop(0)
        await engine.dispose()


def document(**reason_values: list[str]) -> str:
    """The fixture file, with the chargebacks' allowed reasons replaced when given."""
    parsed = yaml.safe_load(SOURCES_FILE.read_text())
    for rule in parsed["sources"][1]["fields"]:
        if rule["name"] == "reason" and "reasons" in reason_values:
            rule["allowed_values"] = reason_values["reasons"]
    return str(yaml.safe_dump(parsed))


def table(changes: list[SourceChange]) -> list[tuple[str, str, int]]:
    return [(c.name, c.action.value, c.version) for c in changes]


async def test_apply_creates_then_is_a_no_op_then_updates_and_the_dry_run_stores_nothing(service: Service) -> None:
    dry = await apply_sources(service.address, document(), dry_run=True)
    assert table(dry) == [("card_transactions", "created", 1), ("chargebacks", "created", 1)]
    assert await service.registry.current() == [], "a dry run registers nothing"

    created = await apply_sources(service.address, document(), dry_run=False)
    assert table(created) == [("card_transactions", "created", 1), ("chargebacks", "created", 1)]
    assert created[0].topic == "bank.card-transactions"
    assert service.catalog.topics == ("bank.card-transactions", "bank.chargebacks"), "served at once"
    again = await apply_sources(service.address, document(), dry_run=False)
    assert table(again) == [("card_transactions", "unchanged", 1), ("chargebacks", "unchanged", 1)]

    widened = document(reasons=["fraud", "dispute", "duplicate"])
    planned = await apply_sources(service.address, widened, dry_run=True)
    assert table(planned) == [("card_transactions", "unchanged", 1), ("chargebacks", "updated", 2)]
    assert planned[1].detail == "fields changed: reason"
    assert (await service.registry.get("chargebacks")).definition.version == 1
    updated = await apply_sources(service.address, widened, dry_run=False)
    assert table(updated) == [("card_transactions", "unchanged", 1), ("chargebacks", "updated", 2)]
    assert updated[1].action is Action.UPDATED and updated[1].detail == "fields changed: reason"


async def test_a_breaking_change_registers_nothing_of_the_file(service: Service) -> None:
    parsed = yaml.safe_load(document())
    await apply_sources(service.address, yaml.safe_dump({"sources": parsed["sources"][1:]}), dry_run=False)
    narrowed = yaml.safe_load(document(reasons=["fraud"]))
    for dry_run in (True, False):
        with pytest.raises(FailedPrecondition, match=r"chargebacks: field reason no longer allows \['dispute'\]"):
            await apply_sources(service.address, yaml.safe_dump(narrowed), dry_run=dry_run)
    assert [s.definition.name for s in await service.registry.current()] == ["chargebacks"]


async def test_an_invalid_document_or_an_unreachable_service_raise(service: Service) -> None:
    with pytest.raises(InvalidArgument, match="sources document is invalid"):
        await apply_sources(service.address, "sources: [{name: x}]", dry_run=False)
    with pytest.raises(InvalidArgument, match="not valid YAML"):
        await apply_sources(service.address, "sources: [", dry_run=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(grpc.aio.AioRpcError) as down:
        await apply_sources(f"127.0.0.1:{closed}", document(), dry_run=True, timeout_s=5)
    assert down.value.code() is grpc.StatusCode.UNAVAILABLE
