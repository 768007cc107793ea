"""Start and stop background processes that the CLI owns, tracked by PID files.

`down` stops only what `up` started: a PID file records the PID and the process start time (seconds
since boot, see ``started_since_boot``), so a recycled PID that now belongs to someone else is never
signalled.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from aimesh.devstack.errors import DevstackError


def port_is_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_port_free(component: str, port: int) -> None:
    """Raise DevstackError naming the process that holds ``port``, if any."""
    if not port_is_open(port):
        return
    holder = "another process"
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                holder = f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                break
    except (psutil.Error, OSError):
        pass
    raise DevstackError(
        component,
        f"port {port} on 127.0.0.1 is taken by {holder}",
        f"stop that process, or set a different port for {component} (see README, 'Local stack')",
    )


EPOCH_START = 1e9
"""A recorded start above this is epoch seconds (PID files written before ``started_since_boot``)."""


def started_since_boot(proc: psutil.Process) -> float:
    """When ``proc`` started, in seconds since the machine booted: its creation time less the boot time,
    both read now. The creation time alone (epoch seconds) is computed from the boot time the kernel
    reports when it is read, which moves whenever the wall clock is stepped (NTP, a VM's clock sync): a
    PID file holding it could make a live server look stale minutes later, and be started a second time."""
    return float(proc.create_time() - psutil.boot_time())


def read_pid(pidfile: Path) -> psutil.Process | None:
    """The live process recorded in ``pidfile``, or None (the file is removed when stale)."""
    try:
        pid_s, started_s = pidfile.read_text().split()
        proc = psutil.Process(int(pid_s))
        started = float(started_s)
        now = proc.create_time() if started > EPOCH_START else started_since_boot(proc)
        if abs(now - started) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(int(pid_s))
        return proc
    except (FileNotFoundError, ValueError):
        return None
    except psutil.Error:
        pidfile.unlink(missing_ok=True)
        return None


def _child_options(env: Mapping[str, str] | None, user: str | None) -> dict[str, Any]:
    """Popen keyword arguments: the child's environment (ours plus ``env``) and, for ``user``, its ids.

    ``user`` makes the child run as that user, with its primary group and supplementary groups (needs root).
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    if user is None:
        return {"env": full_env}
    pw = pwd.getpwnam(user)
    full_env["HOME"] = pw.pw_dir
    full_env["USER"] = user
    return {
        "env": full_env,
        "user": pw.pw_uid,
        "group": pw.pw_gid,
        "extra_groups": os.getgrouplist(user, pw.pw_gid),
    }


def run(
    cmd: Sequence[str],
    *,
    logfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Run ``cmd`` to completion (blocks), output appended to ``logfile``; return its exit status.

    ``user`` runs it as that unprivileged user (needs root), as in ``spawn``.
    """
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as log:
        return subprocess.run(  # noqa: S603 - the command is built by the devstack itself
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            check=False,
            **_child_options(env, user),
        ).returncode


def spawn(
    cmd: Sequence[str],
    *,
    pidfile: Path,
    logfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> psutil.Process:
    """Start ``cmd`` in its own session, detached, output appended to ``logfile``; record it in ``pidfile``.

    Idempotent: when ``pidfile`` names a live process, that process is returned and nothing starts.
    ``user`` runs the command as that unprivileged user (needs root). Does not wait for readiness.
    """
    existing = read_pid(pidfile)
    if existing is not None:
        return existing
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as log:
        popen = subprocess.Popen(  # noqa: S603 - the command is built by the devstack itself
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            **_child_options(env, user),
        )
    proc = psutil.Process(popen.pid)
    pidfile.write_text(f"{proc.pid} {started_since_boot(proc)}\n")
    return proc


def stop(pidfile: Path, *, grace: float = 20.0, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Send ``sig`` to the process group recorded in ``pidfile`` and to every descendant, SIGKILL after ``grace`` s.

    Descendants that left the group (their own session) are signalled one by one, so nothing the
    recorded process started outlives it. Returns True when a process was stopped, False when none was
    running. Removes the PID file.
    """
    proc = read_pid(pidfile)
    if proc is None:
        pidfile.unlink(missing_ok=True)
        return False
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        family = [proc]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    for member in family:
        try:
            if os.getpgid(member.pid) != proc.pid:
                member.send_signal(sig)
        except (psutil.Error, ProcessLookupError):
            pass
    _gone, alive = psutil.wait_procs(family, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    pidfile.unlink(missing_ok=True)
    return True


def wait_until(check: object, *, timeout: float, interval: float = 0.5) -> bool:
    """Poll ``check()`` (a callable returning bool) until it is true or ``timeout`` passes."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())
