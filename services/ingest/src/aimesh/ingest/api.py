"""``aimesh.api.ingest.v1.IngestService``: a thin gRPC adapter over the push intake and the source registry.

Domain errors raised below (``InvalidArgument``, ``NotFound``, ``FailedPrecondition``,
``ResourceExhausted``, ``Unavailable``) become status codes in the server's interceptor, which also
enforces the caller's deadline.
"""

from __future__ import annotations

import grpc

from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.core.errors import InvalidArgument
from aimesh.ingest.catalog import SourceCatalog
from aimesh.ingest.push import PushIntake, PushOutcome, PushRecord
from aimesh.ingest.registry import SourceRegistry, StoredSource
from aimesh.ingest.sources import SourceDefinition

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class IngestServiceApi(ingest_pb2_grpc.IngestServiceServicer):
    """Publish, RegisterSource, GetSource and ListSources (see ``ingest.proto`` for the contracts)."""

    def __init__(self, intake: PushIntake, registry: SourceRegistry, catalog: SourceCatalog) -> None:
        self._intake = intake
        self._registry = registry
        self._catalog = catalog

    async def Publish(
        self, request: ingest_pb2.PublishRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.PublishResponse:
        records = [
            PushRecord(r.payload, r.event_id if r.HasField("event_id") else None, dict(r.headers))
            for r in request.records
        ]
        outcomes = await self._intake.publish(request.source, records)
        results = [_result(o) for o in outcomes]
        accepted = sum(o.accepted for o in outcomes)
        return ingest_pb2.PublishResponse(
            results=results, accepted_count=accepted, rejected_count=len(outcomes) - accepted
        )

    async def RegisterSource(
        self, request: ingest_pb2.RegisterSourceRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.RegisterSourceResponse:
        if not request.HasField("source"):
            raise InvalidArgument("source is required")
        try:
            definition = SourceDefinition.from_proto(request.source)
        except ValueError as exc:
            raise InvalidArgument(f"source {request.source.name or '(unnamed)'} is invalid: {exc}") from exc
        stored, changed = await self._registry.register(definition)
        if changed:
            await self._catalog.refresh()
        return ingest_pb2.RegisterSourceResponse(source=_proto(stored), changed=changed)

    async def GetSource(
        self, request: ingest_pb2.GetSourceRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.GetSourceResponse:
        if not request.name:
            raise InvalidArgument("name is required")
        if request.version < 0:
            raise InvalidArgument("version must not be negative")
        return ingest_pb2.GetSourceResponse(source=_proto(await self._registry.get(request.name, request.version)))

    async def ListSources(
        self, request: ingest_pb2.ListSourcesRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.ListSourcesResponse:
        """Pages ordered by name; the page token is the last name of the previous page."""
        if request.page.page_size < 0:
            raise InvalidArgument("page.page_size must not be negative")
        size = min(request.page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = request.page.page_token
        remaining = [s for s in await self._registry.current() if s.definition.name > after]
        response = ingest_pb2.ListSourcesResponse(sources=[_proto(s) for s in remaining[:size]])
        if len(remaining) > size:
            response.page.next_page_token = remaining[size - 1].definition.name
        return response


def _proto(stored: StoredSource) -> ingest_pb2.SourceDefinition:
    proto = stored.definition.to_proto()
    proto.create_time.FromDatetime(stored.create_time)
    return proto


def _result(outcome: PushOutcome) -> ingest_pb2.RecordResult:
    if outcome.accepted:
        return ingest_pb2.RecordResult(
            index=outcome.index, status=ingest_pb2.RECORD_STATUS_ACCEPTED, event_id=outcome.event_id
        )
    return ingest_pb2.RecordResult(
        index=outcome.index,
        status=ingest_pb2.RECORD_STATUS_REJECTED,
        reason_code=f"REASON_CODE_{outcome.reason}",
        message=outcome.message,
        event_id=outcome.event_id,
        field=outcome.field,
    )
