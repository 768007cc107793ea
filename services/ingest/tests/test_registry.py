"""The source registry on SQLite and PostgreSQL, the catalog that follows it, and the registry RPCs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.api.ingest.v1 import ingest_pb2
from aimesh.core.errors import FailedPrecondition, InvalidArgument, NotFound
from aimesh.core.sql import migrate
from aimesh.core.testing import RecordingSender
from aimesh.ingest.api import IngestServiceApi
from aimesh.ingest.app import MIGRATIONS, open_registry
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.pii import Tokenizer
from aimesh.ingest.push import PushIntake, PushLimits
from aimesh.ingest.registry import SourceRegistry
from aimesh.ingest.settings import IngestSettings
from aimesh.ingest.sources import SourceDefinition, load_sources
from aimesh.ingest.validation import Rejection, ValidRecord

SOURCES_FILE = Path(__file__).parent / "fixtures" / "sources.yaml"


@pytest.fixture
async def registry(sql_engine: AsyncEngine) -> AsyncIterator[SourceRegistry]:
    await migrate(sql_engine, MIGRATIONS)
    yield SourceRegistry(sql_engine)


def chargebacks(**changes: Any) -> SourceDefinition:
    base = next(s for s in load_sources(SOURCES_FILE) if s.name == "chargebacks")
    return SourceDefinition.model_validate(base.model_dump() | changes)


def with_reasons(*reasons: str) -> SourceDefinition:
    base = chargebacks()
    fields = [f.model_copy(update={"allowed_values": reasons}) if f.name == "reason" else f for f in base.fields]
    return base.model_copy(update={"fields": tuple(fields)})


async def test_versions_are_assigned_and_identical_registrations_are_no_ops(registry: SourceRegistry) -> None:
    first, created = await registry.register(chargebacks())
    again, changed = await registry.register(chargebacks())
    widened, updated = await registry.register(with_reasons("fraud", "dispute", "duplicate"))

    assert (created, changed, updated) == (True, False, True)
    assert (first.definition.version, again.definition.version, widened.definition.version) == (1, 1, 2)
    assert (await registry.get("chargebacks")).definition.version == 2
    assert (await registry.get("chargebacks", 1)).definition == first.definition
    assert [s.definition.version for s in await registry.current()] == [2]


async def test_breaking_change_is_refused_with_reasons_and_nothing_is_stored(registry: SourceRegistry) -> None:
    await registry.register(chargebacks())
    with pytest.raises(FailedPrecondition, match=r"chargebacks: version 2 would break.*no longer allows \['dispute'\]"):
        await registry.register(with_reasons("fraud"))
    assert (await registry.get("chargebacks")).definition.version == 1


async def test_unknown_source_or_version_is_not_found(registry: SourceRegistry) -> None:
    with pytest.raises(NotFound, match="no source nope"):
        await registry.get("nope")
    await registry.register(chargebacks())
    with pytest.raises(NotFound, match="no version 7 of source chargebacks"):
        await registry.get("chargebacks", 7)


async def test_without_a_sources_file_nothing_is_applied_and_a_file_is_applied_at_start_or_refused(
    registry: SourceRegistry, sql_engine: AsyncEngine, tmp_path: Path
) -> None:
    await open_registry(IngestSettings(data_dir=tmp_path), sql_engine)
    assert await registry.current() == [], "ingest ships no definitions"
    await open_registry(IngestSettings(data_dir=tmp_path, sources_file=SOURCES_FILE), sql_engine)
    assert [s.definition.name for s in await registry.current()] == ["card_transactions", "chargebacks"]
    await open_registry(IngestSettings(data_dir=tmp_path, sources_file=SOURCES_FILE), sql_engine)
    assert [s.definition.version for s in await registry.current()] == [1, 1], "re-applying is a no-op"
    path = tmp_path / "sources.yaml"
    document = {"sources": [s.model_dump(mode="json", exclude={"version"}) for s in load_sources(SOURCES_FILE)]}
    document["sources"][1]["fields"] = [f for f in document["sources"][1]["fields"] if f["name"] != "transaction_id"]
    path.write_text(yaml.safe_dump(document))

    with pytest.raises(ValueError, match=r"is refused: source chargebacks: .*field transaction_id is removed"):
        await open_registry(IngestSettings(data_dir=tmp_path, sources_file=path), sql_engine)


async def test_catalog_follows_the_registry_and_applies_topic_overrides(registry: SourceRegistry) -> None:
    await registry.register(chargebacks())
    catalog = SourceCatalog(registry, Tokenizer("s"), topic_overrides={"chargebacks": "test.cb"})
    await catalog.refresh()
    payload = (
        b'{"chargeback_id":"c1","transaction_id":"t","card_id":"k","reason":"duplicate","timestamp":1714564800000}'
    )
    assert isinstance(catalog.current("chargebacks").validator.validate(payload), Rejection)
    assert catalog.topics == ("test.cb",) and catalog.for_topic("test.cb") is catalog.current("chargebacks")

    await registry.register(with_reasons("fraud", "dispute", "duplicate"))
    await catalog.refresh()
    active = catalog.current("chargebacks")
    assert active.definition.version == 2 and active.definition.topic == "test.cb"
    assert isinstance(active.validator.validate(payload), ValidRecord)
    with pytest.raises(NotFound, match=r"unknown source 'x'; known sources: \['chargebacks'\]"):
        catalog.current("x")


async def test_an_override_of_a_source_not_registered_yet_applies_once_it_is(registry: SourceRegistry) -> None:
    catalog = SourceCatalog(registry, Tokenizer("s"), topic_overrides={"chargebacks": "test.cb"})
    await catalog.refresh()
    assert catalog.topics == () and catalog.pending_overrides == ["chargebacks"]

    await registry.register(chargebacks())
    await catalog.refresh()
    assert catalog.topics == ("test.cb",) and catalog.pending_overrides == []
    assert catalog.names == ["chargebacks"]


async def test_a_new_source_may_not_read_the_topic_of_another(registry: SourceRegistry) -> None:
    await registry.register(chargebacks())
    disputes = chargebacks(name="disputes")
    with pytest.raises(FailedPrecondition, match=r"topic bank\.chargebacks is already read by source chargebacks"):
        await registry.register(disputes)
    _, created = await registry.register(chargebacks(name="disputes", topic="bank.disputes"))
    assert created


class Context:
    """Just enough of ``grpc.aio.ServicerContext`` for the API methods (they never touch it)."""


async def test_registry_rpcs(registry: SourceRegistry) -> None:
    catalog = SourceCatalog(registry, Tokenizer("s"))
    intake = PushIntake(catalog, RecordingSender(), dlq_topic="dlq", limits=PushLimits())
    api = IngestServiceApi(intake, registry, catalog)
    ctx: Any = Context()
    request = ingest_pb2.RegisterSourceRequest(source=chargebacks().to_proto())

    created = await api.RegisterSource(request, ctx)
    assert created.changed and created.source.version == 1 and created.source.create_time.seconds > 0
    assert catalog.current("chargebacks").definition.version == 1, "the catalog refreshes after a change"
    assert not (await api.RegisterSource(request, ctx)).changed
    got = await api.GetSource(ingest_pb2.GetSourceRequest(name="chargebacks"), ctx)
    assert SourceDefinition.from_proto(got.source) == chargebacks()

    narrowed = ingest_pb2.RegisterSourceRequest(source=with_reasons("fraud").to_proto())
    with pytest.raises(FailedPrecondition) as refused:
        await api.RegisterSource(narrowed, ctx)
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    bad_proto = chargebacks().to_proto()
    bad_proto.entity_key = "nope"
    bad = ingest_pb2.RegisterSourceRequest(source=bad_proto)
    with pytest.raises(InvalidArgument, match="entity_key must name a required declared field"):
        await api.RegisterSource(bad, ctx)

    await api.RegisterSource(ingest_pb2.RegisterSourceRequest(source=load_sources(SOURCES_FILE)[0].to_proto()), ctx)
    page = await api.ListSources(ingest_pb2.ListSourcesRequest(page={"page_size": 1}), ctx)
    assert [s.name for s in page.sources] == ["card_transactions"] and page.page.next_page_token
    rest = await api.ListSources(ingest_pb2.ListSourcesRequest(page={"page_token": page.page.next_page_token}), ctx)
    assert [s.name for s in rest.sources] == ["chargebacks"] and not rest.page.next_page_token
