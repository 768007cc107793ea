"""The Redis part: its command line (port, data dir, AOF persistence) and its health when nothing answers."""

from __future__ import annotations

import socket

import pytest

from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.redis_server import APPENDFSYNC, RedisServer


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_command_line_binds_localhost_and_persists_with_an_aof(paths: Paths) -> None:
    """Needs redis-server on PATH (``make setup`` installs it)."""
    command = RedisServer(paths, port=6391).command()
    assert option(command, "--bind") == "127.0.0.1"
    assert option(command, "--port") == "6391"
    assert option(command, "--dir") == str(paths.home / "data" / "redis")
    assert (option(command, "--appendonly"), option(command, "--appendfsync")) == ("yes", APPENDFSYNC)
    assert option(command, "--save") == ""  # no RDB snapshots: the AOF is the one copy
    assert option(command, "--daemonize") == "no"  # the PID file must name the server itself


def test_missing_redis_server_names_the_install_script(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(DevstackError) as info:
        RedisServer(paths).server_binary()
    assert "deploy/local/redis/install.sh" in info.value.fix


def test_health_of_a_server_that_is_not_there(paths: Paths) -> None:
    port = free_port()
    health = RedisServer(paths, port=port).health()
    assert (health.running, health.healthy, health.version) == (False, False, None)
    assert health.endpoint == f"redis://127.0.0.1:{port}/0"
