"""Authentication, per-tenant permissions and undecodable requests against the real ingest API
(``IngestService`` over its registry and real Kafka, served by the core ``GrpcServer`` with auth on).

Tokens come from a ``DevAuthority`` whose policy has a tenant ``demo`` (every permission) and a tenant
``reader`` (``source.read`` on ``card_transactions`` only). Raw bytes go through a generic channel call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.core.bus import EventProducer
from aimesh.core.devauth import DevAuthority
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.sql import create_engine, migrate
from aimesh.ingest.access import ACCESS
from aimesh.ingest.app import MIGRATIONS, SERVICE_NAME, build_api, open_catalog, open_registry
from aimesh.ingest.settings import IngestSettings
from tests.integration.ingest_sources import BANKING_SOURCES

pytestmark = pytest.mark.integration

TENANTS = {
    "demo": [{"actions": ["*"], "resources": ["*"]}],
    "reader": [{"actions": ["source.read"], "resources": ["card_transactions"]}],
}
METHODS = {m.name: m for m in ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].methods}


@pytest.fixture
async def served(endpoints, make_topic, unique, tmp_path: Path) -> AsyncIterator[tuple[str, DevAuthority]]:  # type: ignore[no-untyped-def]
    authority = DevAuthority.create(tmp_path / "auth", tenants=TENANTS)
    settings = IngestSettings(
        kafka_bootstrap=endpoints.kafka_bootstrap,
        consumer_group=f"ingest-auth-{unique}",
        sources_file=BANKING_SOURCES,
        source_topics={"card_transactions": await make_topic("auth-tx"), "chargebacks": await make_topic("auth-cb")},
        records_topic=await make_topic("auth-records"),
        dlq_topic=await make_topic("auth-dlq", partitions=1),
        data_dir=tmp_path,
        grpc_port=0,
        **authority.server_settings(),
    )
    engine = create_engine(settings.sqlalchemy_url())
    await migrate(engine, MIGRATIONS)
    registry = await open_registry(settings, engine)
    async with EventProducer(settings.kafka_bootstrap, source="ingest") as producer:
        api = build_api(settings, registry, await open_catalog(settings, registry), producer)
        server = GrpcServer(
            settings,
            [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(api, s)],
            [SERVICE_NAME],
            access=ACCESS,
        )
        await server.server.start()
        await server.set_serving(True)
        try:
            yield f"127.0.0.1:{server.port}", authority
        finally:
            await server.server.stop(0)
            await engine.dispose()


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def call(address: str, method: str, request: Any, token: str | None) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        return await getattr(stub, method)(request, metadata=bearer(token) if token else None, timeout=10)


async def code_of(address: str, method: str, request: Any, token: str | None) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(address, method, request, token)
    return err.value.code(), err.value.details() or ""


async def test_undecodable_bytes_to_every_method_are_invalid_argument(served: tuple[str, DevAuthority]) -> None:
    address, authority = served
    token = authority.mint("it", tenant="demo")
    async with grpc.aio.insecure_channel(address) as channel:
        for name, method in METHODS.items():
            raw = channel.unary_unary(f"/{SERVICE_NAME}/{name}", request_serializer=None, response_deserializer=None)
            for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05ab"):  # a bad tag; a string field cut short
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await raw(garbage, metadata=bearer(token), timeout=10)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
                expected = f"request is not a valid {method.input_type.full_name}: "
                assert (err.value.details() or "").startswith(expected), err.value.details()


async def test_missing_or_invalid_tokens_are_unauthenticated(served: tuple[str, DevAuthority]) -> None:
    address, authority = served
    request = ingest_pb2.GetSourceRequest(name="card_transactions")
    tokens = {
        "no token": None,
        "bad signature": authority.mint("it", tenant="demo", key=Ed25519PrivateKey.generate()),
        "expired": authority.mint("it", tenant="demo", ttl_seconds=-3600),
        "wrong audience": authority.mint("it", tenant="demo", audience="another-api"),
    }
    for case, token in tokens.items():
        code, details = await code_of(address, "GetSource", request, token)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (case, details)
    async with grpc.aio.insecure_channel(address) as channel:  # health stays open
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_permissions_per_tenant_and_source(served: tuple[str, DevAuthority]) -> None:
    address, authority = served
    reader = authority.mint("analyst", tenant="reader")
    got = await call(address, "GetSource", ingest_pb2.GetSourceRequest(name="card_transactions"), reader)
    assert got.source.name == "card_transactions"
    denied = {
        "GetSource": (ingest_pb2.GetSourceRequest(name="chargebacks"), "source.read 'chargebacks'"),
        "ListSources": (ingest_pb2.ListSourcesRequest(), "source.read every resource"),
        "Publish": (ingest_pb2.PublishRequest(source="card_transactions"), "source.write 'card_transactions'"),
        "RegisterSource": (
            ingest_pb2.RegisterSourceRequest(source=ingest_pb2.SourceDefinition(name="card_transactions")),
            "source.register 'card_transactions'",
        ),
    }
    for method, (request, what) in denied.items():
        code, details = await code_of(address, method, request, reader)
        assert code == grpc.StatusCode.PERMISSION_DENIED, method
        assert details == f"tenant 'reader' may not {what}"
    demo = authority.mint("operator", tenant="demo")
    listed = await call(address, "ListSources", ingest_pb2.ListSourcesRequest(), demo)
    assert {s.name for s in listed.sources} >= {"card_transactions", "chargebacks"}
