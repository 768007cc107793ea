"""The five aimesh services, each run as ``python -m aimesh.<name>`` from the running environment."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping

import httpx
from rich.console import Console

from aimesh.devstack import credentials
from aimesh.devstack.component import Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import spawn
from aimesh.devstack.server import HOST, Server
from aimesh.devstack.service_metrics import consumer_report

SERVICE_NAMES = ("ingest", "feature", "training", "inference", "monitor")
FIRST_GRPC_PORT = 50051
FIRST_ADMIN_PORT = 8081


class Service(Server):
    """One service process: gRPC on ``grpc_port``, the admin HTTP app (``/readyz``, ``/healthz``) on ``admin_port``.

    Contract: ``start`` raises DevstackError when ``aimesh.<name>`` is not installed or a port is taken,
    and returns without waiting; ``wait_ready`` blocks until ``GET /readyz`` answers 200; ``health``
    reports the version from ``GET /healthz``.
    """

    def __init__(
        self,
        paths: Paths,
        name: str,
        *,
        grpc_port: int,
        admin_port: int,
        kafka_bootstrap: str,
        console: Console | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        super().__init__(paths, console=console)
        self.grpc_port = grpc_port
        self.admin_port = admin_port
        self.kafka_bootstrap = kafka_bootstrap
        self.extra_env = dict(extra_env or {})
        self.ports = (grpc_port, admin_port)

    @property
    def module(self) -> str:
        return f"aimesh.{self.name}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    def environment(self) -> dict[str, str]:
        """Ports, ``<NAME>_DATA_DIR`` (the stack's data directory, shared: it holds the lake), the Kafka
        bootstrap and, unless ``AIMESH_AUTH_ENABLED`` is false, the stack's auth settings
        (``aimesh.devstack.credentials``), then ``extra_env`` on top."""
        prefix = self.name.upper()
        auth = credentials.ensure(self.paths).service_environment() if credentials.auth_enabled() else {}
        return {
            f"{prefix}_GRPC_PORT": str(self.grpc_port),
            f"{prefix}_ADMIN_PORT": str(self.admin_port),
            f"{prefix}_DATA_DIR": str(self.paths.home / "data"),
            "AIMESH_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            **auth,
            **self.extra_env,
        }

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def start(self) -> None:
        """Spawn ``python -m aimesh.<name>`` with the ports in its environment. Does not wait."""
        if self.is_running():
            return
        if importlib.util.find_spec(self.module) is None:
            raise DevstackError(
                self.name,
                f"module {self.module} is not installed in {sys.prefix}",
                f"pip install -e services/{self.name} into this environment (make setup)",
            )
        self.check_ports()
        spawn(
            self.command(),
            pidfile=self.pidfile,
            logfile=self.logfile,
            env=self.environment(),
            cwd=self.paths.repo,
        )

    def wait_ready(self, timeout: float) -> None:
        """Block until ``GET /readyz`` answers 200; DevstackError after ``timeout`` seconds."""
        self.wait_for(
            self._ready,
            timeout=timeout,
            what=f"{self.admin_url}/readyz does not answer 200",
            fix="readiness checks the service's dependencies: make sure `aimesh status` shows the infra healthy",
        )

    def health(self) -> Health:
        """Healthy when ``GET /healthz`` answers 200 with ``status: ok``, ``/readyz`` 200 and no consumer
        partition is stuck (``aimesh.devstack.service_metrics``); reports ``version``. The detail names
        what readiness finds missing, why liveness fails, the consumer lag, stuck partitions and the
        spool depth (from ``/metrics``)."""
        endpoint = f"grpc {HOST}:{self.grpc_port}, admin {self.admin_url}"
        try:
            response = httpx.get(f"{self.admin_url}/healthz", timeout=3.0)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Health(self.name, self.is_running(), False, None, endpoint, f"no /healthz answer ({exc})")
        if not isinstance(body, dict):
            body = {}
        missing = self._missing()
        ready = missing is not None and not missing
        try:
            report = consumer_report(httpx.get(f"{self.admin_url}/metrics", timeout=3.0).text)
        except (httpx.HTTPError, ValueError):
            report = None
        healthy = response.status_code == 200 and body.get("status") == "ok" and ready and not (report and report.stuck)
        version = body.get("version")
        detail = [f"healthz {response.status_code} {body.get('status', '?')}"]
        reasons = body.get("reasons")
        if isinstance(reasons, dict):
            detail.extend(f"{name}: {why}" for name, why in reasons.items())
        if ready:
            detail.append("ready")
        elif missing:
            detail.append("not ready: " + "; ".join(f"{name} ({why})" for name, why in missing.items()))
        else:
            detail.append("not ready")
        detail.append(report.describe() if report is not None else "no /metrics")
        return Health(
            self.name,
            running=self.is_running(),
            healthy=healthy,
            version=str(version) if version is not None else None,
            endpoint=endpoint,
            detail=", ".join(detail),
        )

    def _missing(self) -> dict[str, str] | None:
        """The failed readiness checks ``/readyz`` names (empty when ready); None when it does not answer."""
        try:
            response = httpx.get(f"{self.admin_url}/readyz", timeout=3.0)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        if response.status_code == 200:
            return {}
        failed = body.get("failed") if isinstance(body, dict) else None
        return {str(k): str(v) for k, v in failed.items()} if isinstance(failed, dict) and failed else {"?": "503"}

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.admin_url}/readyz", timeout=3.0).status_code == 200
        except httpx.HTTPError:
            return False


def services(
    paths: Paths, *, kafka_bootstrap: str, otlp_endpoint: str | None = None, console: Console | None = None
) -> list[Service]:
    """The five services in start order, gRPC ports 50051.. and admin ports 8081.. in that order; with
    ``otlp_endpoint`` they export spans there (``AIMESH_OTLP_ENDPOINT``, unless the environment sets it)."""
    tracing = {"AIMESH_OTLP_ENDPOINT": os.environ.get("AIMESH_OTLP_ENDPOINT", otlp_endpoint)} if otlp_endpoint else {}
    return [
        Service(
            paths,
            name,
            grpc_port=FIRST_GRPC_PORT + i,
            admin_port=FIRST_ADMIN_PORT + i,
            kafka_bootstrap=kafka_bootstrap,
            console=console,
            extra_env=tracing,
        )
        for i, name in enumerate(SERVICE_NAMES)
    ]
