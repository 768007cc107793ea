"""The OpenTelemetry Collector of the local stack, built from Go modules with the official builder.

``install`` builds it once per manifest: ``go install go.opentelemetry.io/collector/cmd/builder@<BUILDER_VERSION>``
(into ``<dist>/otelcol/bin``), then the builder compiles ``deploy/local/otelcol/builder-config.yaml`` (the
OTLP receiver, the batch and transform processors, the contrib Elasticsearch exporter, every module at
one release) into ``<dist>/otelcol/<hash of the manifest>/otelcol-aimesh``; a changed manifest builds
anew, an unchanged one is reused. Modules come from the Go module proxy (``GOPROXY`` as set), the Go
build cache is Go's own. The build's output is ``<logs>/otelcol-build.log``.

The collector runs ``deploy/local/otelcol/config.yaml``: OTLP/gRPC on 127.0.0.1:``grpc_port`` (4317,
what ``AIMESH_OTLP_ENDPOINT`` names) and OTLP/HTTP on ``http_port`` (4318), spans written as ECS
documents into the Elasticsearch data stream ``traces_index`` (``traces-aimesh-default``).
``wait_ready`` first puts the data stream's index template ``TEMPLATE_NAME`` (the exporter writes with
``require_data_stream``, and this Elasticsearch ships no ``traces-*`` template), then waits for the
OTLP port.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from aimesh.devstack.component import Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import port_is_open, run, spawn
from aimesh.devstack.server import HOST, Server, last_log_line

BUILDER_VERSION = "v0.150.0"
"""The builder's release; the manifest's modules are at the same release."""
BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
BINARY_NAME = "otelcol-aimesh"
DEFAULT_GRPC_PORT = 4317
DEFAULT_HTTP_PORT = 4318
DEFAULT_TRACES_INDEX = "traces-aimesh-default"
TEMPLATE_NAME = "traces-aimesh"
DEFAULT_GO = Path("/usr/local/go/bin/go")


def go_command() -> str:
    """The ``go`` command: ``$GO``, else ``go`` on PATH, else /usr/local/go/bin/go; DevstackError when none."""
    for candidate in (os.environ.get("GO"), shutil.which("go"), str(DEFAULT_GO)):
        if candidate and Path(candidate).is_file():
            return candidate
    raise DevstackError("otelcol", "no Go toolchain found", "install Go 1.26+ (on PATH or /usr/local/go/bin/go)")


def traces_template(index: str = DEFAULT_TRACES_INDEX) -> dict[str, Any]:
    """The composable index template of the traces data stream ``index``: the ECS fields the exporter
    writes, ids and names as keywords; other span attributes mapped dynamically, no date detection."""
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [f"{index}*"],
        "data_stream": {},
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "date_detection": False,
                "properties": {
                    "@timestamp": {"type": "date_nanos"},
                    "trace": {"properties": {"id": keyword}},
                    "span": {"properties": {"id": keyword, "name": keyword, "kind": keyword}},
                    "parent": {"properties": {"id": keyword}},
                    "service": {"properties": {"name": keyword}},
                    "event": {"properties": {"outcome": keyword, "duration": {"type": "long"}}},
                    "data_stream": {"properties": {"type": keyword, "dataset": keyword, "namespace": keyword}},
                },
            },
        },
    }


class OtelCollector(Server):
    """The collector (see the module doc), bound to 127.0.0.1.

    Contract: ``install`` builds the binary unless this manifest's build is there (DevstackError naming
    the build log when the builder fails, or when there is no Go); ``start`` refuses a taken port and
    returns at once; ``wait_ready`` installs the traces template, then blocks until the OTLP/gRPC port
    accepts connections; ``health`` never raises.
    """

    name = "otelcol"

    def __init__(
        self,
        paths: Paths,
        *,
        console: Console | None = None,
        grpc_port: int = DEFAULT_GRPC_PORT,
        http_port: int = DEFAULT_HTTP_PORT,
        elasticsearch_url: str = "http://127.0.0.1:9200",
        traces_index: str = DEFAULT_TRACES_INDEX,
        build_root: Path | None = None,
    ) -> None:
        """``build_root``: where builds are cached (default ``<dist>/otelcol``), so a private stack (a test's)
        can reuse the stack's build."""
        super().__init__(paths, console=console)
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.ports = (grpc_port, http_port)
        self.elasticsearch_url = elasticsearch_url.rstrip("/")
        self.traces_index = traces_index
        self.build_root = build_root if build_root is not None else paths.dist / "otelcol"

    @property
    def endpoint(self) -> str:
        """What ``AIMESH_OTLP_ENDPOINT`` takes: the OTLP/gRPC address."""
        return f"{HOST}:{self.grpc_port}"

    @property
    def manifest(self) -> Path:
        return self.paths.repo / "deploy" / "local" / "otelcol" / "builder-config.yaml"

    @property
    def config(self) -> Path:
        return self.paths.repo / "deploy" / "local" / "otelcol" / "config.yaml"

    @property
    def build_dir(self) -> Path:
        """This manifest's build: ``<build_root>/<first 12 hex of sha256(builder version + manifest)>``."""
        digest = hashlib.sha256(BUILDER_VERSION.encode() + self.manifest.read_bytes()).hexdigest()[:12]
        return self.build_root / digest

    @property
    def binary(self) -> Path:
        return self.build_dir / BINARY_NAME

    def install(self) -> None:
        """Build the collector unless this manifest's binary exists (minutes the first time)."""
        if self.binary.is_file():
            return
        go = go_command()
        build_log = self.paths.logfile(f"{self.name}-build")
        bin_dir = self.build_root / "bin"
        env = {"GOBIN": str(bin_dir), "PATH": f"{Path(go).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        sources = self.build_dir / "src"
        sources.mkdir(parents=True, exist_ok=True)
        manifest = sources / "builder-config.yaml"
        manifest.write_text(
            re.sub(r"(?m)^(\s*output_path:).*$", rf"\1 {sources}", self.manifest.read_text(encoding="utf-8")),
            encoding="utf-8",
        )
        steps = (
            [go, "install", f"{BUILDER_MODULE}@{BUILDER_VERSION}"],
            [str(bin_dir / "builder"), "--config", str(manifest)],
        )
        with self.console.status(f"[bold]{self.name}[/]: building the collector (minutes, once; {build_log})"):
            for step in steps:
                if run(step, logfile=build_log, env=env, cwd=sources) != 0:
                    raise DevstackError(
                        self.name,
                        f"`{' '.join(step)}` failed (last log line: {last_log_line(build_log)})",
                        f"read {build_log}; the Go module proxy must serve the manifest's modules",
                    )
        (sources / BINARY_NAME).replace(self.binary)

    def environment(self) -> dict[str, str]:
        """The ``${env:...}`` values ``config.yaml`` reads."""
        return {
            "OTELCOL_GRPC_PORT": str(self.grpc_port),
            "OTELCOL_HTTP_PORT": str(self.http_port),
            "OTELCOL_ELASTICSEARCH_URL": self.elasticsearch_url,
            "OTELCOL_TRACES_INDEX": self.traces_index,
        }

    def start(self) -> None:
        """Spawn the collector with ``config.yaml``. Does not wait."""
        if self.is_running():
            return
        self.check_ports()
        if not self.binary.is_file():
            raise DevstackError(self.name, f"{self.binary} is not built", "run `aimesh up` (it builds it)")
        spawn(
            [str(self.binary), "--config", f"file:{self.config}"],
            pidfile=self.pidfile,
            logfile=self.logfile,
            env=self.environment(),
        )

    def put_template(self) -> bool:
        """PUT the traces data stream's index template; False when Elasticsearch does not accept it (yet)."""
        try:
            reply = httpx.put(
                f"{self.elasticsearch_url}/_index_template/{self.template_name}",
                json=traces_template(self.traces_index),
                timeout=10.0,
            )
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    @property
    def template_name(self) -> str:
        """``TEMPLATE_NAME`` for the default index, else ``<traces_index>`` (a private stack's own)."""
        return TEMPLATE_NAME if self.traces_index == DEFAULT_TRACES_INDEX else self.traces_index

    def wait_ready(self, timeout: float) -> None:
        """Put the index template (Elasticsearch must answer), then wait for the OTLP/gRPC port."""
        self.wait_for(
            self.put_template,
            timeout=timeout,
            what=f"Elasticsearch at {self.elasticsearch_url} did not accept the index template {self.template_name}",
            fix="start Elasticsearch first (`aimesh up --only elasticsearch`)",
        )
        self.wait_for(
            lambda: port_is_open(self.grpc_port),
            timeout=timeout,
            what=f"nothing listens on {self.endpoint}",
            fix="read the collector's log for a configuration error",
            log_lines=10,
        )

    def version(self) -> str | None:
        """The built collector's version (``--version``), None when it is not built or does not answer."""
        if not self.binary.is_file():
            return None
        try:
            out = subprocess.run(  # noqa: S603 - our own binary
                [str(self.binary), "--version"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip().rsplit(" ", 1)[-1] or None

    def health(self) -> Health:
        """Healthy when the OTLP/gRPC port accepts connections; the version is the binary's own."""
        listening = port_is_open(self.grpc_port)
        return Health(
            self.name,
            running=self.is_running(),
            healthy=listening,
            version=self.version(),
            endpoint=f"otlp grpc {self.endpoint}, http {HOST}:{self.http_port}",
            detail=f"traces -> {self.elasticsearch_url}/{self.traces_index}" if listening else "OTLP port closed",
        )
