"""PID-file bookkeeping, stopping whole process trees, and the port-taken error."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from aimesh.devstack.errors import DevstackError
from aimesh.devstack.process import EPOCH_START, ensure_port_free, read_pid, run, spawn, started_since_boot, stop


def test_spawn_records_pid_and_is_idempotent(tmp_path: Path) -> None:
    pidfile, log = tmp_path / "x.pid", tmp_path / "x.log"
    proc = spawn(["sleep", "60"], pidfile=pidfile, logfile=log)
    try:
        assert read_pid(pidfile) == proc
        assert spawn(["sleep", "60"], pidfile=pidfile, logfile=log).pid == proc.pid
    finally:
        assert stop(pidfile, grace=5)
    assert not proc.is_running()
    assert not pidfile.exists()
    assert stop(pidfile) is False


@pytest.mark.parametrize("epoch", [False, True], ids=["since-boot", "epoch"])
def test_stale_pidfile_is_ignored_and_removed(tmp_path: Path, epoch: bool) -> None:
    pidfile = tmp_path / "x.pid"
    me = psutil.Process()
    started = me.create_time() if epoch else started_since_boot(me)
    pidfile.write_text(f"{me.pid} {started - 1000}\n")  # our pid, but another start time
    assert read_pid(pidfile) is None
    assert not pidfile.exists()


def test_a_pidfile_of_the_older_epoch_format_still_names_its_live_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "old.pid"
    me = psutil.Process()
    pidfile.write_text(f"{me.pid} {me.create_time()}\n")
    assert read_pid(pidfile) == me


def test_a_recorded_start_is_seconds_since_boot(tmp_path: Path) -> None:
    pidfile = tmp_path / "sleep.pid"
    proc = spawn(["sleep", "60"], pidfile=pidfile, logfile=tmp_path / "sleep.log")
    try:
        recorded = float(pidfile.read_text().split()[1])
        assert recorded < EPOCH_START
        assert recorded == pytest.approx(proc.create_time() - psutil.boot_time(), abs=1.0)
        assert read_pid(pidfile) == proc
    finally:
        stop(pidfile, grace=5)


def test_stop_kills_children_that_left_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "tree.pid"
    script = "import subprocess,time; subprocess.Popen(['sleep','60'], start_new_session=True); time.sleep(60)"
    proc = spawn([sys.executable, "-c", script], pidfile=pidfile, logfile=tmp_path / "tree.log")
    for _ in range(50):
        if proc.children():
            break
        time.sleep(0.1)
    children = proc.children(recursive=True)
    assert children, "the child did not start"
    assert stop(pidfile, grace=5)
    assert not any(c.is_running() for c in children)


def test_run_returns_exit_status_and_appends_output(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    assert run(["sh", "-c", "echo hello; exit 3"], logfile=log) == 3
    assert log.read_text() == "hello\n"


def test_port_taken_names_the_holder() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DevstackError) as info:
            ensure_port_free("kafka", port)
    assert f"port {port}" in info.value.cause
    assert "Fix:" in str(info.value)


def test_free_port_passes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ensure_port_free("kafka", port)
