"""Apache Kafka 4 in KRaft mode (one node, broker + controller), run from its Maven Central jars.

Layout: jars in ``<dist>/kafka/libs`` (copied by ``deploy/local/kafka/pom.xml``), rendered config in
``<data>/kafka/config``, the KRaft log directory in ``<data>/kafka/kraft`` (formatted once).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.console import Console

from aimesh.devstack.component import Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.jdk import find_java_home
from aimesh.devstack.maven import run_pom
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import spawn
from aimesh.devstack.server import HOST, Server

JAR_PREFIX = "kafka_2.13-"
MIN_JAVA = 17


@dataclass(frozen=True)
class ClusterInfo:
    """What the broker answered to a metadata request."""

    cluster_id: str
    topics: list[str]


class Kafka(Server):
    """Single-node Kafka on 127.0.0.1: PLAINTEXT on ``port``, the KRaft controller on ``controller_port``.

    Contract: ``install`` runs Maven only when the broker jar is missing (atomically: a failed download
    leaves nothing half-copied); ``start`` formats the storage on first use and returns without waiting;
    ``wait_ready`` blocks until a metadata request through aiokafka's admin client succeeds.
    """

    name = "kafka"

    def __init__(
        self,
        paths: Paths,
        *,
        console: Console | None = None,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
    ) -> None:
        super().__init__(paths, console=console)
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.ports = (port, controller_port)

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients (``AIMESH_KAFKA_BOOTSTRAP``)."""
        return f"{HOST}:{self.port}"

    @property
    def libs(self) -> Path:
        return self.paths.dist / "kafka" / "libs"

    @property
    def config_dir(self) -> Path:
        return self.paths.data(self.name) / "config"

    @property
    def log_dirs(self) -> Path:
        return self.paths.data(self.name) / "kraft"

    @property
    def deploy_dir(self) -> Path:
        return self.paths.repo / "deploy" / "local" / "kafka"

    def installed_version(self) -> str | None:
        """The Kafka version of the installed broker jar (``kafka_2.13-4.1.1.jar`` -> ``4.1.1``), or None."""
        jars = sorted(self.libs.glob(f"{JAR_PREFIX}*.jar"))
        return jars[-1].name.removeprefix(JAR_PREFIX).removesuffix(".jar") if jars else None

    def install(self) -> None:
        """Copy the broker jar and its runtime dependencies from Maven Central into ``libs`` (once)."""
        if self.installed_version() is not None:
            return
        staging = self.libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        run_pom(
            self.name,
            self.deploy_dir / "pom.xml",
            properties={"kafka.libs": str(staging)},
            logfile=self.paths.logfile(f"{self.name}-install"),
            console=self.console,
        )
        staging.replace(self.libs)

    def render_config(self) -> Path:
        """Write ``server.properties`` (from the template in deploy/local/kafka) and the log4j2 config.

        Returns the path of ``server.properties``. Overwrites earlier renderings; touches no data.
        """
        self.config_dir.mkdir(parents=True, exist_ok=True)
        template = Template((self.deploy_dir / "server.properties").read_text())
        server = self.config_dir / "server.properties"
        server.write_text(
            template.substitute(host=HOST, port=self.port, controller_port=self.controller_port, log_dirs=self.log_dirs)
        )
        shutil.copyfile(self.deploy_dir / "log4j2.properties", self.config_dir / "log4j2.properties")
        return server

    def java_command(self, main_class: str, *args: str) -> list[str]:
        """``java -Xmx.. -cp libs/* <main_class> args`` on a JDK 17+."""
        java = find_java_home(self.name, MIN_JAVA) / "bin" / "java"
        return [
            str(java),
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    def format_storage(self, server_properties: Path) -> None:
        """Format the KRaft log directory with a fresh cluster id, as ``kafka-storage.sh format`` does. Once."""
        if (self.log_dirs / "meta.properties").is_file():
            return
        cluster_id = self._storage_tool("random-uuid").strip().splitlines()[-1]
        self._storage_tool("format", "--cluster-id", cluster_id, "--config", str(server_properties))

    def _storage_tool(self, *args: str) -> str:
        result = subprocess.run(  # noqa: S603 - our own java command
            self.java_command("kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()
            raise DevstackError(
                self.name,
                f"kafka-storage {args[0]} failed: {output[-1] if output else 'no output'}",
                f"remove {self.log_dirs} if it holds a broken format, then `aimesh up` again",
            )
        return result.stdout

    def start(self) -> None:
        """Render the config, format the storage once, and spawn ``kafka.Kafka``. Does not wait."""
        if self.is_running():
            return
        if self.installed_version() is None:
            raise DevstackError(
                self.name, f"Kafka jars are missing in {self.libs}", "run `aimesh up` (it installs them)"
            )
        self.check_ports()
        server = self.render_config()
        self.format_storage(server)
        spawn(
            self.java_command("kafka.Kafka", str(server)),
            pidfile=self.pidfile,
            logfile=self.logfile,
            cwd=self.paths.data(self.name),
        )

    def wait_ready(self, timeout: float) -> None:
        """Block until a metadata request (list topics) succeeds; DevstackError after ``timeout`` s."""
        self.wait_for(
            lambda: self._describe() is not None,
            timeout=timeout,
            what=f"no metadata answer from {self.bootstrap}",
            fix="Kafka may need more time on a loaded machine: rerun with a larger --timeout",
        )

    def health(self) -> Health:
        """Healthy when the broker answers a metadata request; version from the installed broker jar."""
        cluster = self._describe()
        detail = f"cluster {cluster.cluster_id}, {len(cluster.topics)} topic(s)" if cluster else ""
        return Health(
            self.name,
            running=self.is_running(),
            healthy=cluster is not None,
            version=self.installed_version(),
            endpoint=f"kafka://{self.bootstrap}",
            detail=detail or "no metadata answer",
        )

    def _describe(self) -> ClusterInfo | None:
        """Cluster id and topic list from the broker, or None when it does not answer within ~3 s."""
        try:
            return asyncio.run(asyncio.wait_for(self._describe_async(), timeout=5))
        except (KafkaError, OSError, TimeoutError):
            return None

    async def _describe_async(self) -> ClusterInfo:
        client = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        await client.start()
        try:
            topics = await client.list_topics()
            cluster = await client.describe_cluster()
        finally:
            await client.close()
        return ClusterInfo(cluster_id=str(cluster["cluster_id"]), topics=sorted(topics))
