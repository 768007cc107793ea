"""The fault suite's private stack: its own Kafka, Elasticsearch and Triton, and the five services on free ports.

Nothing here touches the shared servers (Kafka 9092, Elasticsearch 9200, Triton 8000/8001): the suite stops
and kills its own instances only. The distributions (Kafka jars, the Elasticsearch zip, Triton's python
backend) are the shared ones under ``.aimesh/dist`` (installed on first use, as `aimesh up` does); all data,
configs, logs and PID files live in a temporary home. Services keep their state in SQLite files under that
home, so PostgreSQL and Redis are not needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import tritonclient.grpc
import tritonclient.utils
from rich.console import Console

from aimesh.devstack.elasticsearch import Elasticsearch
from aimesh.devstack.kafka import Kafka
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import read_pid, stop
from aimesh.devstack.server import HOST
from aimesh.devstack.services import SERVICE_NAMES, Service
from aimesh.devstack.triton import Triton
from aimesh.examples.banking.scenario import (
    MeshAddress,
    Scenario,
    ScenarioConfig,
    ScenarioSummary,
    payment_requests,
)

TRAINING_EVENTS = int(os.environ.get("FAULTS_TRAINING_EVENTS", "2500"))
"""Generator events published before the one training run (the pack needs 50 mature rows and 5 positives)."""
PII_SECRET = "faults-suite-secret"
GRPC_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)
"""Client channels of the suite reconnect within ~1 s, so recovery times measure the mesh, not the test."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PrivatePaths(Paths):
    """A private home (data, logs, PID files) that reuses the shared distributions (no second download)."""

    shared_dist: Path = field(default_factory=lambda: Paths.default().dist)

    @property
    def dist(self) -> Path:
        return self.shared_dist


@dataclass
class FaultStack:
    """The running private stack; ``grpc(name)`` / ``admin(name)`` are the services' addresses."""

    paths: PrivatePaths
    kafka: Kafka
    elasticsearch: Elasticsearch
    triton: Triton
    services: dict[str, Service]
    metadata: tuple[tuple[str, str], ...] = ()
    """gRPC call metadata (a bearer token once authentication is on)."""
    training: ScenarioSummary | None = None
    log: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def lake_root(self) -> Path:
        return self.paths.home / "data" / "lake"

    def grpc(self, name: str) -> str:
        return f"{HOST}:{self.services[name].grpc_port}"

    def admin(self, name: str) -> str:
        return self.services[name].admin_url

    def channel(self, name: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.grpc(name), options=GRPC_OPTIONS)

    def sync_channel(self, name: str) -> grpc.Channel:
        return grpc.insecure_channel(self.grpc(name), options=GRPC_OPTIONS)

    @property
    def address(self) -> MeshAddress:
        return MeshAddress(
            kafka_bootstrap=self.bootstrap,
            ingest_admin=self.admin("ingest"),
            feature_admin=self.admin("feature"),
            ingest_grpc=self.grpc("ingest"),
            feature_grpc=self.grpc("feature"),
            training_grpc=self.grpc("training"),
            inference_grpc=self.grpc("inference"),
            monitor_grpc=self.grpc("monitor"),
            elasticsearch_url=self.elasticsearch.url,
        )

    def note(self, line: str) -> None:
        self.log.append(line)
        print(f"[faults] {line}", flush=True)

    # --- faults -----------------------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """kill -9 of one service (the whole process group, as a crashed pod)."""
        stop(self.services[name].pidfile, sig=signal.SIGKILL, grace=5)

    def restart(self, name: str, timeout: float = 120) -> float:
        """Start ``name`` again (as a supervisor would) and wait until ready; returns the seconds it took."""
        t0 = time.monotonic()
        service = self.services[name]
        service.start()
        service.wait_ready(timeout)
        return time.monotonic() - t0

    def stop_kafka(self) -> None:
        stop(self.kafka.pidfile, grace=30)

    def start_kafka(self) -> None:
        self.kafka.start()
        self.kafka.wait_ready(180)

    def stop_elasticsearch(self) -> None:
        stop(self.elasticsearch.pidfile, grace=30)

    def start_elasticsearch(self) -> None:
        self.elasticsearch.start()
        self.elasticsearch.wait_ready(240)

    def kill_triton(self) -> None:
        stop(self.triton.pidfile, sig=signal.SIGKILL, grace=5)

    def triton_ready_models(self) -> set[str]:
        """The models Triton serves now (state READY in its repository index)."""
        client = tritonclient.grpc.InferenceServerClient(url=self.triton.grpc_target)
        try:
            index = client.get_model_repository_index(as_json=True)
        finally:
            client.close()
        return {m["name"] for m in index.get("models", []) if m.get("state") == "READY"}

    def wait_triton_models(self, names: set[str], timeout: float) -> None:
        """Wait until Triton serves every model of ``names`` again (loaded by inference's reconciler, not by
        the harness); ``TimeoutError`` naming the missing ones after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        missing = set(names)
        while time.monotonic() < deadline:
            with contextlib.suppress(tritonclient.utils.InferenceServerException):
                missing = names - self.triton_ready_models()
                if not missing:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Triton does not serve {sorted(missing)} again {timeout:.0f} s after its restart")

    def start_triton(self) -> None:
        self.triton.start()
        self.triton.wait_ready(120)

    def ensure_infra(self) -> list[str]:
        """Start any private server that is not running (a scenario that failed half-way); names them."""
        started = []
        for part, start in (
            (self.kafka, self.start_kafka),
            (self.elasticsearch, self.start_elasticsearch),
            (self.triton, self.start_triton),
        ):
            if read_pid(part.pidfile) is None:
                start()
                started.append(part.name)
        return started

    def stop_all(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        for part in (self.triton, self.elasticsearch, self.kafka):
            stop(part.pidfile, grace=20)


def service_environment(
    kafka: Kafka, es: Elasticsearch, triton: Triton, grpc_ports: Mapping[str, int]
) -> dict[str, dict[str, str]]:
    """Per-service variables: the private servers' addresses; every other setting is the default."""
    feature = f"{HOST}:{grpc_ports['feature']}"
    env: dict[str, dict[str, str]] = {
        "ingest": {"INGEST_PII_SECRET": PII_SECRET},
        "feature": {},
        "training": {
            "TRAINING_MODEL_REPOSITORY": str(triton.model_repository),
            "TRAINING_TRITON_GRPC": triton.grpc_target,
            "TRAINING_FEATURE_GRPC": feature,
            "TRAINING_CHAMPION_AUC_FLOOR": "0.0",
        },
        "inference": {"INFERENCE_TRITON_URL": triton.grpc_target, "INFERENCE_FEATURE_ADDRESS": feature},
        "monitor": {"MONITOR_ELASTICSEARCH_URL": es.url},
    }
    for name, values in env.items():  # one spool directory per process (the spool's contract)
        values[f"{name.upper()}_SPOOL_DIR"] = str(kafka.paths.home / "spool" / name)
    return env


def build_stack(home: Path) -> FaultStack:
    """The private stack's parts on free ports (nothing started)."""
    paths = PrivatePaths(home=home, repo=Paths.default().repo)
    paths.ensure()
    console = Console(stderr=True, quiet=True)
    kafka = Kafka(paths, console=console, port=free_port(), controller_port=free_port(), heap="384m")
    es = Elasticsearch(paths, console=console, http_port=free_port(), heap="512m")
    triton = Triton(paths, console=console, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    grpc_ports = {name: free_port() for name in SERVICE_NAMES}
    env = service_environment(kafka, es, triton, grpc_ports)
    services = {
        name: Service(
            paths,
            name,
            grpc_port=grpc_ports[name],
            admin_port=free_port(),
            kafka_bootstrap=kafka.bootstrap,
            console=console,
            extra_env=env[name],
        )
        for name in SERVICE_NAMES
    }
    stack = FaultStack(paths, kafka, es, triton, services)
    stack.metadata = caller_credentials(paths)
    return stack


def caller_credentials(paths: Paths) -> tuple[tuple[str, str], ...]:
    """When the stack runs with authentication (the devstack's credentials), the demo tenant's bearer token as
    call metadata, also exported as ``$AIMESH_AUTH_TOKEN_FILE`` for the examples' clients; else nothing."""
    try:
        from aimesh.devstack import credentials
    except ImportError:
        return ()
    if not credentials.auth_enabled():
        return ()
    demo = credentials.ensure(paths).demo_token
    os.environ["AIMESH_AUTH_TOKEN_FILE"] = str(demo)
    return (("authorization", f"Bearer {demo.read_text().strip()}"),)


def start_stack(stack: FaultStack, report: Callable[[str], None]) -> None:
    """Install what is missing (shared distributions), start the servers, then the five services."""
    t0 = time.monotonic()
    for part in (stack.kafka, stack.elasticsearch, stack.triton):
        part.install()
        part.start()
    stack.kafka.wait_ready(180)
    stack.triton.wait_ready(120)
    stack.elasticsearch.wait_ready(240)
    report(
        f"private Kafka {stack.bootstrap}, Elasticsearch {stack.elasticsearch.url}, "
        f"Triton {stack.triton.grpc_target} ready in {time.monotonic() - t0:.0f}s"
    )
    t0 = time.monotonic()
    for service in stack.services.values():
        service.start()
    for service in stack.services.values():
        service.wait_ready(180)
    report(f"five services ready in {time.monotonic() - t0:.0f}s")


def train_champion(stack: FaultStack, report: Callable[[str], None]) -> ScenarioSummary:
    """Apply the banking pack, publish ``TRAINING_EVENTS`` generator events, train one model and wait until
    ``Score`` routes to it (the demo's steps, sized for a 2-core machine)."""
    config = ScenarioConfig(
        events=TRAINING_EVENTS,
        payments=1,
        seed=1313,
        end=datetime.now(UTC) - timedelta(minutes=5),
        step_timeout_s=300,
        run_params={"min_positives": "2"},
    )

    async def go() -> ScenarioSummary:
        from aimesh.examples.banking.pack import apply_pack
        from aimesh.examples.banking.scenario import _ingest_counts

        scenario = Scenario(stack.address, config, report=report)
        try:
            for line in await apply_pack(stack.grpc("ingest"), stack.grpc("feature")):
                report(f"pack: {line}")
            baseline = await _ingest_counts(scenario._http, stack.admin("ingest"))
            feature_baseline = await scenario._feature_consumed()
            summary = ScenarioSummary(published=await scenario.publish())
            await scenario.wait_ingested(summary, baseline)
            await scenario.wait_features(summary.ingest_accepted, feature_baseline)
            summary.run = await scenario.train()
            probe = next(payment_requests(scenario.generator_config, 1, datetime.now(UTC)))
            await scenario.wait_routable(summary.run.model_version, probe)
            return summary
        finally:
            await scenario.close()

    return asyncio.run(go())
