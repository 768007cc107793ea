"""PostgreSQL from Debian's packages, one cluster for the local stack and the tests.

The cluster lives in ``<data>/postgres`` (owned by the ``postgres`` system user: initdb refuses root)
and listens on 127.0.0.1:5433 and on a Unix socket inside that directory. Local-socket connections
are trusted (the directory is 0700, so only ``postgres`` and root reach the socket); TCP needs a
password (scram-sha-256). ``wait_ready`` creates the role ``aimesh`` (password ``aimesh``) and the
databases ``aimesh`` and ``aimesh_test`` it owns, idempotently.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from rich.console import Console

from aimesh.devstack.component import Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import run, spawn, stop
from aimesh.devstack.server import HOST, Server
from aimesh.devstack.system import chown_tree, ensure_system_user, grant_traverse

PG_ROOT = Path("/usr/lib/postgresql")
USER = "postgres"
USER_HOME = "/var/lib/postgresql"
_SOCKET_PATH_MAX = 100
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def find_bin_dir(root: Path = PG_ROOT) -> Path | None:
    """The newest ``<root>/<major>/bin`` that holds ``initdb`` (Debian's layout), or None."""
    found = [p.parent for p in root.glob("*/bin/initdb") if p.parent.parent.name.isdigit()]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


class Postgres(Server):
    """A PostgreSQL cluster on 127.0.0.1:``port`` run as the ``postgres`` user.

    Contract: ``install`` installs the server package (deploy/local/postgres/install.sh) only when no
    ``initdb`` is found and initialises the cluster once; ``start`` returns without waiting;
    ``wait_ready`` blocks until the role and databases exist and a password login over TCP works;
    ``stop`` asks for a fast shutdown (SIGINT), so open client sessions do not hold it up.
    """

    name = "postgres"

    def __init__(
        self,
        paths: Paths,
        *,
        console: Console | None = None,
        port: int = 5433,
        role: str = "aimesh",
        password: str = "aimesh",  # noqa: S107 - the documented password of the local development role
        databases: Sequence[str] = ("aimesh", "aimesh_test"),
    ) -> None:
        super().__init__(paths, console=console)
        for ident in (role, *databases):
            if not _IDENT.match(ident):
                raise ValueError(f"not a plain SQL identifier: {ident!r}")
        self.port = port
        self.role = role
        self.password = password
        self.databases = tuple(databases)
        self.ports = (port,)

    @property
    def pgdata(self) -> Path:
        """The cluster directory; also holds the Unix socket."""
        return self.paths.data(self.name)

    def url(self, database: str = "aimesh") -> str:
        """``postgresql://`` URL of ``database`` for the ``aimesh`` role over TCP."""
        return f"postgresql://{self.role}:{self.password}@{HOST}:{self.port}/{database}"

    def bin_dir(self) -> Path:
        """Debian's PostgreSQL bin dir; raises DevstackError naming install.sh when there is none."""
        found = find_bin_dir()
        if found is None:
            raise DevstackError(
                self.name,
                f"no PostgreSQL server binaries (no {PG_ROOT}/*/bin/initdb)",
                f"run {self._install_script()} (apt-get install -y postgresql)",
            )
        return found

    def _install_script(self) -> Path:
        return self.paths.repo / "deploy" / "local" / "postgres" / "install.sh"

    def install(self) -> None:
        """Install the server package when missing, then ``initdb`` the cluster once (as ``postgres``)."""
        if find_bin_dir() is None:
            with self.console.status(f"[bold]{self.name}[/]: apt-get install postgresql"):
                run(["sh", str(self._install_script())], logfile=self.paths.logfile(f"{self.name}-install"))
        bin_dir = self.bin_dir()
        ensure_system_user(self.name, USER, home=USER_HOME)
        if (self.pgdata / "PG_VERSION").is_file():
            return
        socket = self.pgdata / f".s.PGSQL.{self.port}"
        if len(str(socket)) > _SOCKET_PATH_MAX:
            raise DevstackError(
                self.name,
                f"the socket path {socket} is longer than {_SOCKET_PATH_MAX} characters",
                "set AIMESH_HOME to a shorter directory",
            )
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        chown_tree(self.pgdata, USER)
        grant_traverse(self.pgdata)
        log = self.paths.logfile(f"{self.name}-install")
        code = run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(self.pgdata),
                "--username",
                USER,
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
            ],
            logfile=log,
            user=USER,
            cwd=Path("/"),
        )
        if code != 0:
            raise DevstackError(
                self.name,
                f"initdb failed with exit code {code} (see {log})",
                f"remove {self.pgdata} and run `aimesh up` again",
            )

    def start(self) -> None:
        """Spawn ``postgres`` as the ``postgres`` user. Does not wait."""
        if self.is_running():
            return
        if not (self.pgdata / "PG_VERSION").is_file():
            raise DevstackError(self.name, f"no cluster in {self.pgdata}", "run `aimesh up` (it runs initdb)")
        self.check_ports()
        spawn(
            [
                str(self.bin_dir() / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"unix_socket_directories={self.pgdata}",
            ],
            pidfile=self.pidfile,
            logfile=self.logfile,
            cwd=self.pgdata,
            user=USER,
        )

    def wait_ready(self, timeout: float) -> None:
        """Block until the role and databases exist and ``aimesh`` logs in over TCP."""
        self.wait_for(
            lambda: self._run(self._bootstrap()) is not None,
            timeout=timeout,
            what=f"no password login at {HOST}:{self.port}",
            fix="PostgreSQL may need more time on a loaded machine: rerun with a larger --timeout",
        )

    def health(self) -> Health:
        """Healthy when ``SELECT version()`` answers over TCP as ``aimesh``; that is the version shown."""
        version = self._run(self._version())
        return Health(
            self.name,
            running=self.is_running(),
            healthy=version is not None,
            version=version.split(" on ")[0].removeprefix("PostgreSQL ") if version else None,
            endpoint=self.url(),
            detail=f"databases {', '.join(self.databases)}" if version else "no password login over TCP",
        )

    def stop(self) -> bool:
        """Fast shutdown (SIGINT): open sessions are rolled back, the cluster is left consistent."""
        return stop(self.pidfile, sig=signal.SIGINT)

    @staticmethod
    def _run(coro: Coroutine[Any, Any, str]) -> str | None:
        """Run ``coro`` to completion (10 s at most); None when the server cannot be reached or refuses."""
        try:
            return asyncio.run(asyncio.wait_for(coro, timeout=10))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return None

    async def _bootstrap(self) -> str:
        admin = await asyncpg.connect(host=str(self.pgdata), port=self.port, user=USER, database="postgres")
        try:
            if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", self.role):
                secret = self.password.replace("'", "''")
                await admin.execute(f"CREATE ROLE {self.role} LOGIN PASSWORD '{secret}'")
            for db in self.databases:
                if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db):
                    await admin.execute(f"CREATE DATABASE {db} OWNER {self.role}")
        finally:
            await admin.close()
        return await self._version()

    async def _version(self) -> str:
        conn = await asyncpg.connect(self.url(), timeout=5)
        try:
            return str(await conn.fetchval("SELECT version()"))
        finally:
            await conn.close()
