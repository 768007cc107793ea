"""What the ``aimesh ingest`` commands do against a running ingest, printing aside (the CLI is in aimesh.devstack).

``apply_sources`` registers every source of a sources document (the YAML of ``INGEST_SOURCES_FILE``, e.g.
a use case pack's ``sources.yaml``) through the public API, ``IngestService.RegisterSource``, one call
per source. Registering a definition equal to the stored latest version stores nothing (``unchanged``),
so applying the same file again is a no-op. A registered source is validated and consumed by every
ingest replica without a restart (see ``aimesh.ingest.catalog``).

There is no validate-only flag on ``RegisterSource``: the dry run (and the check before a real apply)
reads each source's latest version with ``GetSource`` and runs the registry's own compatibility rules
(``aimesh.ingest.compatibility``) locally. So a file with a breaking change registers nothing; a
concurrent writer can still make one ``RegisterSource`` fail after earlier ones succeeded (the service
then answers FAILED_PRECONDITION and applying the file again finishes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import grpc

from aimesh.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from aimesh.core.channels import open_caller_channel
from aimesh.core.errors import FailedPrecondition, InvalidArgument
from aimesh.ingest.compatibility import breaking_changes
from aimesh.ingest.sources import SourceDefinition, parse_sources_yaml


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class SourceChange:
    """What applying one source did (or, in a dry run, would do).

    ``version`` is the stored version: the new one for ``created``/``updated`` (in a dry run the one it
    would get), the latest one for ``unchanged``. ``detail`` names what differs from the stored version.
    """

    name: str
    action: Action
    version: int
    topic: str
    detail: str = ""


async def apply_sources(target: str, document: str, *, dry_run: bool, timeout_s: float = 30.0) -> list[SourceChange]:
    """Register every source of the YAML ``document`` at the ingest gRPC address ``target``; one change each.

    With ``dry_run`` nothing is registered. Raises ``InvalidArgument`` when the document is invalid and
    ``FailedPrecondition`` naming every source and reason when one would break its existing consumers
    (nothing is registered then), and ``grpc.aio.AioRpcError`` with the service's status otherwise
    (UNAVAILABLE when it does not answer, FAILED_PRECONDITION when a concurrent change got in between).
    """
    try:
        definitions = parse_sources_yaml(document)
    except ValueError as exc:
        raise InvalidArgument(f"the sources document is invalid: {exc}") from exc
    async with open_caller_channel(target) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        planned = [await _plan(stub, definition, timeout_s) for definition in definitions]
        if refused := [
            f"{d.name}: {'; '.join(reasons)}" for d, (_, reasons) in zip(definitions, planned, strict=True) if reasons
        ]:
            raise FailedPrecondition(f"breaking changes, nothing registered: {' | '.join(refused)}")
        if dry_run:
            return [change for change, _ in planned]
        return [
            await _register(stub, d, change, timeout_s) for d, (change, _) in zip(definitions, planned, strict=True)
        ]


async def _plan(
    stub: ingest_pb2_grpc.IngestServiceStub, definition: SourceDefinition, timeout_s: float
) -> tuple[SourceChange, list[str]]:
    """The change registering ``definition`` would make, and the reasons it would be refused."""
    try:
        response: ingest_pb2.GetSourceResponse = await stub.GetSource(
            ingest_pb2.GetSourceRequest(name=definition.name), timeout=timeout_s
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() is not grpc.StatusCode.NOT_FOUND:
            raise
        return SourceChange(definition.name, Action.CREATED, 1, definition.intake_topic), []
    stored = SourceDefinition.from_proto(response.source)
    version = response.source.version
    if stored == definition:
        return SourceChange(definition.name, Action.UNCHANGED, version, definition.intake_topic), []
    detail = differences(stored, definition)
    change = SourceChange(definition.name, Action.UPDATED, version + 1, definition.intake_topic, detail)
    return change, breaking_changes(stored, definition)


async def _register(
    stub: ingest_pb2_grpc.IngestServiceStub, definition: SourceDefinition, planned: SourceChange, timeout_s: float
) -> SourceChange:
    response: ingest_pb2.RegisterSourceResponse = await stub.RegisterSource(
        ingest_pb2.RegisterSourceRequest(source=definition.to_proto()), timeout=timeout_s
    )
    version = response.source.version
    if not response.changed:
        return SourceChange(definition.name, Action.UNCHANGED, version, definition.intake_topic)
    action = Action.UPDATED if version > 1 else Action.CREATED
    return SourceChange(definition.name, action, version, definition.intake_topic, planned.detail)


def differences(old: SourceDefinition, new: SourceDefinition) -> str:
    """A short description of what ``new`` changes in ``old`` (same source): fields added, changed,
    removed, and the other attributes that differ."""
    parts: list[str] = []
    old_fields = {f.name: f for f in old.fields}
    new_fields = {f.name: f for f in new.fields}
    _named(parts, "fields added", [n for n in new_fields if n not in old_fields])
    _named(parts, "fields changed", [n for n in new_fields if n in old_fields and new_fields[n] != old_fields[n]])
    _named(parts, "fields removed", [n for n in old_fields if n not in new_fields])
    ignored = {"fields", "version"}
    _named(
        parts, "changed", [k for k in type(new).model_fields if k not in ignored and getattr(old, k) != getattr(new, k)]
    )
    return "; ".join(parts)


def _named(parts: list[str], what: str, names: Sequence[str]) -> None:
    if names:
        parts.append(f"{what}: {', '.join(names)}")
