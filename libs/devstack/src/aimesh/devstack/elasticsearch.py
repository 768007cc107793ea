"""Elasticsearch 9 from the distribution Elastic publishes on Maven Central (the integ-test-zip).

Elasticsearch refuses to run as root, so it runs as the unprivileged system user ``aimesh-es``, which
owns the unpacked distribution (``<dist>/elasticsearch/elasticsearch-<version>``) and the state directory
(``<data>/elasticsearch/{config,data,logs,tmp}``). It needs a JDK 21+ (``ES_JAVA_HOME``); the
integ-test-zip bundles none.

The integ-test-zip is a minimal distribution: it lacks the ``rest-root`` module, so ``GET /`` answers
405; the version comes from the nodes-info API instead.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path
from string import Template

import httpx
from rich.console import Console

from aimesh.devstack.component import Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.jdk import find_java_home
from aimesh.devstack.maven import run_pom
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import spawn
from aimesh.devstack.server import HOST, Server
from aimesh.devstack.system import chown_tree, ensure_system_user, grant_traverse

VERSION = "9.5.0"
USER = "aimesh-es"
MIN_JAVA = 21


def unpack_zip(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest`` keeping the Unix file modes (bin/ scripts stay executable).

    Atomic: extracts into a sibling staging directory, then renames each top-level entry into ``dest``.
    """
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            extracted = Path(zf.extract(info, staging))
            mode = stat.S_IMODE(info.external_attr >> 16)
            if mode:
                extracted.chmod(mode)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        entry.replace(dest / entry.name)
    staging.rmdir()


class Elasticsearch(Server):
    """Single-node Elasticsearch, HTTP on 127.0.0.1:``http_port``, security off, run as ``aimesh-es``.

    Contract: ``install`` downloads (Maven) and unpacks only what is missing and creates the system user;
    ``start`` returns without waiting; ``wait_ready`` blocks until ``_cluster/health`` reports at least
    yellow. ``stop`` (inherited) signals the whole process group: the CLI launcher and the server JVM.
    """

    name = "elasticsearch"

    def __init__(
        self,
        paths: Paths,
        *,
        console: Console | None = None,
        http_port: int = 9200,
        heap: str = "512m",
        version: str = VERSION,
        user: str = USER,
    ) -> None:
        super().__init__(paths, console=console)
        self.http_port = http_port
        self.heap = heap
        self.version = version
        self.user = user
        self.ports = (http_port,)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def home(self) -> Path:
        """The unpacked distribution (``ES_HOME``)."""
        return self.paths.dist / "elasticsearch" / f"elasticsearch-{self.version}"

    @property
    def archive(self) -> Path:
        return self.paths.dist / "downloads" / f"elasticsearch-{self.version}.zip"

    @property
    def state(self) -> Path:
        """``<data>/elasticsearch``: ``config`` (``ES_PATH_CONF``), ``data``, ``logs``, ``tmp``."""
        return self.paths.data(self.name)

    @property
    def deploy_dir(self) -> Path:
        return self.paths.repo / "deploy" / "local" / "elasticsearch"

    def install(self) -> None:
        """Create the system user; fetch the zip with Maven and unpack it, unless already there."""
        ensure_system_user(self.name, self.user)
        if (self.home / "bin" / "elasticsearch").is_file():
            return
        if not self.archive.is_file():
            run_pom(
                self.name,
                self.deploy_dir / "pom.xml",
                properties={"es.download": str(self.archive.parent), "elasticsearch.version": self.version},
                logfile=self.paths.logfile(f"{self.name}-install"),
                console=self.console,
            )
        with self.console.status(f"[bold]{self.name}[/]: unpacking {self.archive.name}"):
            unpack_zip(self.archive, self.home.parent)
        self.console.print(f"  {self.name}: unpacked to {self.home}")

    def render_config(self) -> Path:
        """Fill ``config`` from the distribution (files already there are kept) and write ``elasticsearch.yml``.

        Creates ``data``, ``logs`` and ``tmp``, gives the distribution and the state directory to the
        Elasticsearch user and makes sure it can reach them. Returns the config directory.
        """
        config = self.state / "config"
        for src in (self.home / "config").rglob("*"):
            target = config / src.relative_to(self.home / "config")
            if src.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
        template = Template((self.deploy_dir / "elasticsearch.yml").read_text())
        (config / "elasticsearch.yml").write_text(
            template.substitute(
                host=HOST, http_port=self.http_port, path_data=self.state / "data", path_logs=self.state / "logs"
            )
        )
        for sub in ("data", "logs", "tmp"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        for tree in (self.home, self.state):
            chown_tree(tree, self.user)
            grant_traverse(tree)
        return config

    def environment(self, config: Path) -> dict[str, str]:
        """The variables ``bin/elasticsearch`` reads: config dir, JDK 21+, heap, temp dir."""
        java_home = find_java_home(self.name, MIN_JAVA, env_vars=("ES_JAVA_HOME", "JAVA_HOME"))
        return {
            "ES_PATH_CONF": str(config),
            "ES_JAVA_HOME": str(java_home),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            "ES_TMPDIR": str(self.state / "tmp"),
        }

    def start(self) -> None:
        """Render the config and spawn ``bin/elasticsearch`` as the Elasticsearch user. Does not wait."""
        if self.is_running():
            return
        if not (self.home / "bin" / "elasticsearch").is_file():
            raise DevstackError(self.name, f"no distribution in {self.home}", "run `aimesh up` (it installs it)")
        self.check_ports()
        config = self.render_config()
        spawn(
            [str(self.home / "bin" / "elasticsearch")],
            pidfile=self.pidfile,
            logfile=self.logfile,
            env=self.environment(config),
            cwd=self.home,
            user=self.user,
        )

    def wait_ready(self, timeout: float) -> None:
        """Block until ``GET /_cluster/health?wait_for_status=yellow`` answers; DevstackError after ``timeout``."""
        self.wait_for(
            lambda: self._cluster_status() in ("green", "yellow"),
            timeout=timeout,
            what=f"{self.url}/_cluster/health is not yellow or green",
            fix="Elasticsearch may need more time on a loaded machine: rerun with a larger --timeout",
        )

    def health(self) -> Health:
        """Healthy when the cluster is yellow or green; the version comes from the nodes-info API."""
        status = self._cluster_status()
        version: str | None = None
        if status is not None:
            try:
                nodes = httpx.get(
                    f"{self.url}/_nodes/_local", params={"filter_path": "nodes.*.version"}, timeout=5.0
                ).json()["nodes"]
                version = str(next(iter(nodes.values()))["version"])
            except (httpx.HTTPError, ValueError, KeyError, StopIteration):
                version = None
        return Health(
            self.name,
            running=self.is_running(),
            healthy=status in ("green", "yellow"),
            version=version,
            endpoint=self.url,
            detail=f"cluster {status}" if status else "not answering",
        )

    def _cluster_status(self) -> str | None:
        """The cluster status (waiting up to 1 s for yellow), or None when the node does not answer."""
        try:
            response = httpx.get(
                f"{self.url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "1s"}, timeout=5.0
            )
            return str(response.json()["status"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None
