"""The feature service's client, shared by training (point-in-time sets) and inference (online lookups).

``FeatureServiceClient`` holds one long-lived ``grpc.aio`` channel to ``FeatureService``, opened on
first use (on the running event loop, by ``aimesh.core.channels.open_channel``) and released by
``close()``. The channel retries a lost peer at least once a second (see ``aimesh.core.channels``), so
calls succeed again within about a second of a restarted feature service's return. Calls do not wait
for a connection: while the peer is down they fail at once with ``Unavailable``.

Errors come back as domain errors (``AimeshError.from_status``: ``InvalidArgument``, ``NotFound``,
``DeadlineExceeded`` ..., ``Unavailable`` for a peer that cannot be reached or a code without a
domain error), their message prefixed with ``feature service: ``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aimesh.api.feature.v1 import feature_pb2, feature_pb2_grpc
from aimesh.core.channels import open_channel
from aimesh.core.errors import AimeshError, FailedPrecondition, Unavailable
from aimesh.core.signature import Scalar, scalar

FEATURE_SERVICE_NAME = feature_pb2.DESCRIPTOR.services_by_name["FeatureService"].full_name
HEALTH_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class HistoricalValues:
    """Point-in-time values of a list of entity rows.

    ``values[i][j]`` is feature ``names[j]`` of request row ``i``: its ``scalar`` (numbers, strings,
    bools as the feature service typed them; a tuple of them, oldest first, for a ``last_n`` list, empty
    but not None for an empty list), None where the status is not PRESENT (MISSING, EXPIRED) or the
    value is null; ``missing`` counts those Nones.
    """

    names: list[str]
    values: list[list[Scalar]]
    missing: int


class FeatureServiceClient:
    """``FeatureService`` over gRPC (see the module doc). One instance per event loop; ``close()`` ends it.
    ``token_file``: the bearer token every call carries (``aimesh.core.channels``), none when None."""

    def __init__(
        self,
        address: str,
        *,
        batch_rows: int = 2000,
        historical_timeout_s: float = 120.0,
        token_file: Path | None = None,
    ) -> None:
        if batch_rows <= 0:
            raise ValueError(f"batch_rows must be positive, got {batch_rows}")
        self.address = address
        self.token_file = token_file
        self.batch_rows = batch_rows
        self.historical_timeout_s = historical_timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: feature_pb2_grpc.FeatureServiceStub | None = None
        self._health: health_pb2_grpc.HealthStub | None = None

    def _open(self) -> tuple[feature_pb2_grpc.FeatureServiceStub, health_pb2_grpc.HealthStub]:
        if self._stub is None or self._health is None:
            self._channel = open_channel(self.address, token_file=self.token_file)
            self._stub = feature_pb2_grpc.FeatureServiceStub(self._channel)
            self._health = health_pb2_grpc.HealthStub(self._channel)
        return self._stub, self._health

    async def online(
        self, request: feature_pb2.GetOnlineFeaturesRequest, *, time_left: float | None
    ) -> feature_pb2.GetOnlineFeaturesResponse:
        """``GetOnlineFeatures`` as is; blocks at most ``time_left`` seconds (None: no deadline).

        Raises the domain error of the feature service's status (see the module doc).
        """
        stub, _ = self._open()
        try:
            response: feature_pb2.GetOnlineFeaturesResponse = await stub.GetOnlineFeatures(request, timeout=time_left)
        except grpc.aio.AioRpcError as exc:
            raise AimeshError.from_status(exc.code(), f"feature service: {_details(exc)}") from exc
        return response

    async def historical(self, feature_service: str, rows: Sequence[feature_pb2.EntityRow]) -> HistoricalValues:
        """Point-in-time values of every row of ``rows``, in their order, for ``feature_service``.

        Sends ``batch_rows`` rows per ``GetHistoricalFeatures`` call, one after the other, each call
        limited to ``historical_timeout_s``. No rows: no call, no names. Raises the domain error of the
        feature service's status, naming ``feature_service`` (``NotFound`` when it is not defined), and
        ``FailedPrecondition`` for an answer that does not fit the request: a ``row_index`` out of range,
        a row with another number of values than the first message's ``feature_names``, a request row left
        unanswered, or feature names that change between messages or batches.
        """
        stub, _ = self._open()
        names: list[str] = []
        values: list[list[Scalar]] = []
        missing = 0
        for start in range(0, len(rows), self.batch_rows):
            batch = rows[start : start + self.batch_rows]
            request = feature_pb2.GetHistoricalFeaturesRequest(feature_service=feature_service, entity_rows=batch)
            try:
                batch_names, batch_values = await self._historical_batch(stub, request, len(batch))
            except grpc.aio.AioRpcError as exc:
                raise AimeshError.from_status(
                    exc.code(), f"feature service: GetHistoricalFeatures of {feature_service!r}: {_details(exc)}"
                ) from exc
            if start == 0:
                names = batch_names
            elif batch_names != names:
                raise FailedPrecondition(
                    f"feature service: {feature_service!r} changed its feature list between batches "
                    f"({len(names)} features, then {len(batch_names)})"
                )
            values.extend(batch_values)
            missing += sum(row.count(None) for row in batch_values)
        return HistoricalValues(names=names, values=values, missing=missing)

    async def _historical_batch(
        self,
        stub: feature_pb2_grpc.FeatureServiceStub,
        request: feature_pb2.GetHistoricalFeaturesRequest,
        n: int,
    ) -> tuple[list[str], list[list[Scalar]]]:
        names: list[str] | None = None
        out: list[list[Scalar] | None] = [None] * n
        present = feature_pb2.FEATURE_STATUS_PRESENT
        async for chunk in stub.GetHistoricalFeatures(request, timeout=self.historical_timeout_s):
            if names is None:
                names = list(chunk.feature_names)
            elif chunk.feature_names and list(chunk.feature_names) != names:
                raise FailedPrecondition("feature service: GetHistoricalFeatures changed feature_names within a call")
            for row in chunk.rows:
                if not 0 <= row.row_index < n or len(row.values) != len(names):
                    raise FailedPrecondition(
                        f"feature service: GetHistoricalFeatures row {row.row_index} is out of range (0..{n - 1}) "
                        f"or has {len(row.values)} values for {len(names)} features"
                    )
                out[row.row_index] = [scalar(fv.value) if fv.status == present else None for fv in row.values]
        answered = [row for row in out if row is not None]
        if names is None or len(answered) != n:
            raise FailedPrecondition(f"feature service: GetHistoricalFeatures answered {len(answered)} of {n} rows")
        return names, answered

    async def check_serving(self) -> None:
        """Readiness: the feature service's grpc.health.v1 reports SERVING; raises ``Unavailable`` otherwise."""
        _, health = self._open()
        try:
            reply = await health.Check(
                health_pb2.HealthCheckRequest(service=FEATURE_SERVICE_NAME), timeout=HEALTH_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"feature service at {self.address}: {exc.code().name} {exc.details()}") from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unavailable(f"feature service at {self.address} is not serving")

    async def close(self) -> None:
        """Release the channel (in-flight calls are cancelled); a later call opens a new one."""
        channel, self._channel, self._stub, self._health = self._channel, None, None, None
        if channel is not None:
            await channel.close()


def _details(exc: grpc.aio.AioRpcError) -> str:
    details: str | None = exc.details()
    return details or exc.code().name
