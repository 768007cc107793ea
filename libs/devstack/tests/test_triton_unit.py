"""Unit tests of the Triton component that start no server: command line, environment, install, errors."""

from __future__ import annotations

import os
import socket
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.triton import Triton, model_repository


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(home=tmp_path / ".aimesh", repo=tmp_path)


@pytest.fixture
def triton(paths: Paths) -> Triton:
    return Triton(paths, http_port=_free_port(), grpc_port=_free_port(), metrics_port=_free_port())


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_model_repository_is_under_the_data_directory(paths: Paths, triton: Triton) -> None:
    assert model_repository(paths) == paths.home / "data" / "triton" / "models"
    assert triton.model_repository == model_repository(paths)


def test_command_binds_loopback_on_the_configured_ports(triton: Triton) -> None:
    cmd = triton.command()
    assert Path(cmd[0]).name == "tritonserver"
    for flag in ("--http-address", "--grpc-address", "--metrics-address"):
        assert f"{flag}=127.0.0.1" in cmd
    assert f"--http-port={triton.http_port}" in cmd
    assert f"--grpc-port={triton.grpc_port}" in cmd
    assert f"--metrics-port={triton.metrics_port}" in cmd
    assert "--model-control-mode=explicit" in cmd
    assert "--disable-auto-complete-config" in cmd, "no auto-complete stub (a second torch import) per load"
    assert f"--model-repository={triton.model_repository}" in cmd
    assert f"--backend-directory={triton.backend_directory}" in cmd


def test_environment_puts_this_libpython_and_venv_first(triton: Triton) -> None:
    env = triton.environment()
    lib_path = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert lib_path[0] == sysconfig.get_config_var("LIBDIR")
    assert lib_path[1].endswith("nvidia_pytriton.libs")
    assert env["PATH"].split(os.pathsep)[0] == sysconfig.get_path("scripts")


def test_install_is_idempotent_and_repairs_a_changed_file(triton: Triton) -> None:
    triton.install()
    backend = triton.backend_directory / "python"
    names = {p.name for p in backend.iterdir()}
    assert names == {"libtriton_python.so", "triton_python_backend_utils.py", "triton_python_backend_stub"}
    assert os.access(backend / "triton_python_backend_stub", os.X_OK)
    assert triton.model_repository.is_dir()
    utils = backend / "triton_python_backend_utils.py"
    original = utils.read_bytes()
    utils.write_bytes(b"broken")
    triton.install()
    assert utils.read_bytes() == original
    triton.install()
    assert {p.name for p in backend.iterdir()} == names


def test_start_before_install_names_the_fix(triton: Triton) -> None:
    with pytest.raises(DevstackError, match="not installed") as info:
        triton.start()
    assert "install" in info.value.fix


def test_start_refuses_a_taken_port(paths: Paths, listener: int) -> None:
    triton = Triton(paths, http_port=_free_port(), grpc_port=listener, metrics_port=_free_port())
    triton.install()
    with pytest.raises(DevstackError, match=f"port {listener}"):
        triton.start()
    assert not triton.pidfile.exists()


def _write_log(triton: Triton, count: int) -> None:
    triton.logfile.parent.mkdir(parents=True, exist_ok=True)
    triton.logfile.write_text("".join(f"log line {i}\n" for i in range(count)))


def test_wait_ready_fails_at_once_when_not_running(triton: Triton) -> None:
    _write_log(triton, 50)
    t0 = time.monotonic()
    with pytest.raises(DevstackError, match="not running") as info:
        triton.wait_ready(timeout=30)
    assert time.monotonic() - t0 < 5
    assert str(triton.logfile) in info.value.fix
    # quotes the last 30 lines of the log, not just the last one
    assert "log line 49" in info.value.cause
    assert "log line 20" in info.value.cause
    assert "log line 19" not in info.value.cause


def test_wait_ready_times_out_naming_the_check_the_fix_and_the_log(triton: Triton) -> None:
    # A PID file naming this (live) test process makes the server look running; nothing answers HTTP.
    me = psutil.Process()
    triton.pidfile.parent.mkdir(parents=True, exist_ok=True)
    triton.pidfile.write_text(f"{me.pid} {me.create_time()}")
    _write_log(triton, 3)
    with pytest.raises(DevstackError, match="not ready after 0s") as info:
        triton.wait_ready(timeout=0)
    assert f"{triton.http_url}/v2/health/ready" in info.value.cause
    assert "log line 0" in info.value.cause and "log line 2" in info.value.cause
    assert str(triton.model_repository) in info.value.fix
    assert str(triton.logfile) in info.value.fix


def test_health_never_raises_when_nothing_answers(triton: Triton) -> None:
    health = triton.health()
    assert (health.running, health.healthy, health.version) == (False, False, None)
    assert health.detail == "not running"
