"""Redis from Debian's ``redis-server`` package: the optional online store of the feature service.

One server on 127.0.0.1:6390 (not Debian's 6379, so a system Redis never collides with it), data in
``<data>/redis``, started with command-line options only (Debian's ``/etc/redis/redis.conf`` is not
read). Persistence is the append-only file, ``appendonly yes`` with ``appendfsync everysec``:

- every write the server acknowledged is in the AOF file before the reply (a crash of ``redis-server``
  alone loses nothing), and the file is fsynced once a second: an OS crash or power loss can lose about
  the last second of writes (Redis documents up to two). That is the guarantee the feature service's
  default SQLite store gives too (WAL with ``synchronous=NORMAL``). A feature-store batch and its
  partition offset are one script, logged as one MULTI/EXEC block that Redis replays whole or not at
  all, so a loss rolls whole batches back with their offsets, never half a batch;
- ``appendfsync always`` would close that window but fsyncs on Redis's single thread after every
  write, stalling every reader (online feature requests) for the fsync: the wrong trade for a store
  whose job is read latency. PostgreSQL is the store for deployments that need each commit on disk.

RDB snapshots are off (``save ""``): the AOF is the one copy. The process runs as the invoking user.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
from rich.console import Console

from aimesh.devstack.component import Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import run, spawn
from aimesh.devstack.server import HOST, Server

DEFAULT_PORT = 6390
APPENDFSYNC = "everysec"


class RedisServer(Server):
    """``redis-server`` on 127.0.0.1:``port`` with AOF persistence in ``<data>/redis``.

    Contract: ``install`` runs deploy/local/redis/install.sh (apt-get) only when ``redis-server`` is
    not on PATH; ``start`` returns without waiting; ``wait_ready`` blocks until PING answers; ``stop``
    (SIGTERM) makes Redis fsync the AOF and exit.
    """

    name = "redis"

    def __init__(self, paths: Paths, *, console: Console | None = None, port: int = DEFAULT_PORT) -> None:
        super().__init__(paths, console=console)
        self.port = port
        self.ports = (port,)

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0 (what ``FEATURE_ONLINE_STORE_URL`` takes)."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        return self.paths.data(self.name)

    def _install_script(self) -> Path:
        return self.paths.repo / "deploy" / "local" / "redis" / "install.sh"

    def server_binary(self) -> str:
        """The ``redis-server`` on PATH; raises DevstackError naming install.sh when there is none."""
        found = shutil.which("redis-server")
        if found is None:
            raise DevstackError(
                self.name,
                "redis-server is not on PATH",
                f"run {self._install_script()} (apt-get install -y redis-server)",
            )
        return found

    def install(self) -> None:
        """Install Debian's ``redis-server`` when it is missing (needs root)."""
        if shutil.which("redis-server") is None:
            with self.console.status(f"[bold]{self.name}[/]: apt-get install redis-server"):
                run(["sh", str(self._install_script())], logfile=self.paths.logfile(f"{self.name}-install"))
        self.server_binary()

    def command(self) -> list[str]:
        """The server's command line: every option explicit, no configuration file."""
        return [
            self.server_binary(),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            APPENDFSYNC,
            "--save",
            "",
            "--daemonize",
            "no",
        ]

    def start(self) -> None:
        """Spawn ``redis-server``. Does not wait."""
        if self.is_running():
            return
        self.check_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        spawn(self.command(), pidfile=self.pidfile, logfile=self.logfile, cwd=self.data_dir)

    def wait_ready(self, timeout: float) -> None:
        """Block until PING answers (Redis answers only once it has loaded the AOF)."""
        self.wait_for(
            lambda: self._info() is not None,
            timeout=timeout,
            what=f"no PONG from {HOST}:{self.port}",
            fix="loading a large AOF takes time: rerun with a larger --timeout",
        )

    def health(self) -> Health:
        """Healthy when PING answers; the version is the server's ``redis_version``."""
        info = self._info()
        return Health(
            self.name,
            running=self.is_running(),
            healthy=info is not None,
            version=str(info["redis_version"]) if info else None,
            endpoint=self.url,
            detail=f"appendfsync {info['appendfsync']}, {info['keys']} keys in db 0" if info else "no PONG",
        )

    def _info(self) -> dict[str, object] | None:
        """PING, then the server version, its appendfsync and the keys in db 0; None when it does not answer."""
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=2, socket_connect_timeout=2)
        try:
            if not client.ping():
                return None
            return {
                "redis_version": client.info("server")["redis_version"],
                "appendfsync": client.config_get("appendfsync").get("appendfsync"),
                "keys": client.dbsize(),
            }
        except redis.RedisError:
            return None
        finally:
            client.close()
