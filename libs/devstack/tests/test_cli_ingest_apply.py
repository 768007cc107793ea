"""`aimesh ingest apply FILE [--dry-run] [--address]` against an in-process IngestService (gRPC on 127.0.0.1
in a thread of its own, SQLite registry, no Kafka): the table of created / updated / unchanged sources
with versions, and one-line errors for a breaking change, a bad file and an unreachable service."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimesh.api.ingest.v1 import ingest_pb2_grpc
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.sql import create_engine, migrate
from aimesh.core.testing import RecordingSender
from aimesh.devstack.cli import app
from aimesh.devstack.errors import DevstackError
from aimesh.ingest.api import IngestServiceApi
from aimesh.ingest.app import MIGRATIONS, SERVICE_NAME
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.push import PushIntake, PushLimits
from aimesh.ingest.registry import SourceRegistry
from aimesh.ingest.settings import IngestSettings

ORDERS = """
sources:
  - name: orders
    topic: shop.orders
    entity_type: customer
    entity_key: customer_id
    event_id_field: order_id
    event_time_field: placed_at
    pii_fields: [email]
    pii_token_fields: {email: email_token}
    fields:
      - {name: order_id, type: string, required: true}
      - {name: customer_id, type: string, required: true}
      - {name: email, type: string}
      - {name: total, type: double, min: 0}
      - {name: status, type: string, allowed_values: [placed, shipped]}
      - {name: placed_at, type: timestamp, required: true}
"""


@pytest.fixture
def ingest_address(tmp_path: Path) -> Iterator[str]:
    """An IngestService on a free port, served by an event loop in its own thread until the test ends."""
    ready: threading.Event = threading.Event()
    address: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}")
        await migrate(engine, MIGRATIONS)
        registry = SourceRegistry(engine)
        catalog = SourceCatalog(registry, Tokenizer("s"))
        intake = PushIntake(catalog, RecordingSender(), dlq_topic="dlq", limits=PushLimits())
        api = IngestServiceApi(intake, registry, catalog)
        server = GrpcServer(
            IngestSettings(data_dir=tmp_path, grpc_port=0),
            [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(api, s)],
            [SERVICE_NAME],
        )
        await server.server.start()
        address.append(f"127.0.0.1:{server.port}")
        ready.set()
        await stop.wait()
        await server.server.stop(0)
        await engine.dispose()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the in-process ingest did not start"
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def apply(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["ingest", "apply", *args])
    return result.exit_code, result.output, result.exception


def rows(out: str) -> list[list[str]]:
    """The body rows of the printed table, cell by cell."""
    return [[c.strip() for c in line.strip()[1:-1].split("│")] for line in out.splitlines() if line.startswith("│")]


def test_apply_prints_created_then_unchanged_then_updated_and_the_dry_run_registers_nothing(
    ingest_address: str, tmp_path: Path
) -> None:
    file = tmp_path / "sources.yaml"
    file.write_text(ORDERS)

    code, out, _ = apply(str(file), "--dry-run", "--address", ingest_address)
    assert code == 0 and "(dry run)" in out and rows(out) == [["orders", "created", "1", "shop.orders", ""]], out
    code, out, _ = apply(str(file), "--address", ingest_address)
    assert code == 0 and rows(out) == [["orders", "created", "1", "shop.orders", ""]], out
    code, out, _ = apply(str(file), "--address", ingest_address)
    assert code == 0 and rows(out) == [["orders", "unchanged", "1", "shop.orders", ""]], out

    file.write_text(ORDERS.replace("[placed, shipped]", "[placed, shipped, returned]"))
    code, out, _ = apply(str(file), "--address", ingest_address)
    assert code == 0 and rows(out) == [["orders", "updated", "2", "shop.orders", "fields changed: status"]], out


def test_a_breaking_change_a_bad_file_and_a_missing_service_are_one_line_errors(
    ingest_address: str, tmp_path: Path
) -> None:
    file = tmp_path / "sources.yaml"
    file.write_text(ORDERS)
    assert apply(str(file), "--address", ingest_address)[0] == 0

    file.write_text(ORDERS.replace("[placed, shipped]", "[placed]"))
    _, _, refused = apply(str(file), "--address", ingest_address)
    assert isinstance(refused, DevstackError) and "no longer allows ['shipped']" in str(refused)
    file.write_text("sources: [{name: orders}]")
    _, _, invalid = apply(str(file), "--address", ingest_address)
    assert isinstance(invalid, DevstackError) and "sources document is invalid" in str(invalid)
    _, _, missing = apply(str(tmp_path / "nope.yaml"), "--address", ingest_address)
    assert isinstance(missing, DevstackError) and "cannot read" in str(missing)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    file.write_text(ORDERS)
    _, _, down = apply(str(file), "--address", f"127.0.0.1:{closed}")
    assert isinstance(down, DevstackError) and "UNAVAILABLE" in str(down) and "aimesh up --only ingest" in str(down)
