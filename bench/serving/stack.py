"""The processes a serving benchmark runs against, and what it reads about them.

- ``InferenceProcess``: the real ``python -m aimesh.inference``, started like ``aimesh up`` starts it but
  on free ports, with the run's registry and predictions topics, its own consumer group, the shared Triton
  and the run's feature stub; log shipping off, everything else at its defaults.
- ``start_stub``: ``bench.serving.feature_stub`` in its own process, on a free port.
- ``await_answer``: wait until inference answers a first request (registry replayed, model loaded).
- ``use_stack_token``: the stack's demo token for the harness's callers when auth is on.
- CPU accounting (``serving_process``, ``triton_process``, ``tree_cpu_s``), Triton's version, unloading
  the run's model, package versions and which code was measured.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import grpc
import psutil
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from aimesh.core.channels import TOKEN_FILE_ENV
from aimesh.devstack import credentials
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths, repo_root
from aimesh.devstack.process import port_is_open, read_pid, spawn, stop
from aimesh.devstack.services import Service
from bench.feature.load import LoadError
from bench.ingest.code import _git
from bench.ingest.contenders import free_port
from bench.serving import feature_stub
from bench.serving.feature_stub import StubService


class BenchError(RuntimeError):
    """A part did not start, or two contenders disagree; the message says which and why."""


FAILURES = (BenchError, LoadError, DevstackError, InferenceServerException, grpc.aio.AioRpcError)
"""What a serving benchmark reports as a failed run (exit status 1, logs kept)."""


class InferenceProcess(Service):
    """The real ``python -m aimesh.inference`` of this run (see the module doc); ``profile_to`` runs it under
    ``bench/profiled.py`` (cProfile of its main thread, written there at exit)."""

    def __init__(
        self,
        workdir: Path,
        *,
        bootstrap: str,
        triton: str,
        registry: str,
        predictions: str,
        features: str,
        group: str,
        profile_to: Path | None = None,
    ) -> None:
        super().__init__(
            Paths(home=workdir, repo=repo_root()),
            "inference",
            grpc_port=free_port(),
            admin_port=free_port(),
            kafka_bootstrap=bootstrap,
            extra_env={
                "INFERENCE_TOPICS": f'["{registry}"]',
                "INFERENCE_PREDICTIONS_TOPIC": predictions,
                "INFERENCE_CONSUMER_GROUP": f"{group}-{registry}",
                "INFERENCE_TRITON_URL": triton,
                "INFERENCE_FEATURE_ADDRESS": features,
                "INFERENCE_SHIP_LOGS": "false",
                **({"BENCH_PROFILE_OUT": str(profile_to)} if profile_to is not None else {}),
            },
        )
        self.profile_to = profile_to

    def command(self) -> list[str]:
        if self.profile_to is None:
            return super().command()
        return [*super().command()[:1], "-m", "bench.profiled", "aimesh.inference"]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def use_stack_token(inference: InferenceProcess) -> None:
    """When the stack runs with auth, callers of this process use its demo token (``open_caller_channel``)."""
    if credentials.auth_enabled():
        os.environ[TOKEN_FILE_ENV] = str(credentials.auth_directory(inference.paths) / "demo.token")


def start_stub(stack: AsyncExitStack, workdir: Path, services: Mapping[str, StubService]) -> tuple[str, Path]:
    """Start the feature stub serving ``services`` (stopped with ``stack``); returns its address and pidfile.
    ``BenchError`` when it does not listen within 30 s."""
    source = workdir / "stub-rows.json"
    feature_stub.write(source, services)
    port = free_port()
    pidfile, logfile = workdir / "stub.pid", workdir / "stub.log"
    spawn(
        [sys.executable, "-m", "bench.serving.feature_stub", str(port), str(source)],
        pidfile=pidfile,
        logfile=logfile,
        cwd=repo_root(),
    )
    stack.callback(stop, pidfile, grace=5.0)
    deadline = time.monotonic() + 30
    while not port_is_open(port):
        if time.monotonic() > deadline or read_pid(pidfile) is None:
            raise BenchError(f"the feature stub does not listen on {port}; see {logfile}")
        time.sleep(0.2)
    return f"127.0.0.1:{port}", pidfile


async def await_answer(
    call: Callable[[], Awaitable[object]],
    within_s: float = 60.0,
    retry: Sequence[grpc.StatusCode] = (grpc.StatusCode.UNAVAILABLE,),
) -> None:
    """Return when ``call()`` succeeds (inference has replayed the registry and Triton serves the model);
    raises the last error after ``within_s``, or at once for a status not in ``retry``."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await call()
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in retry or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def serving_process(process: psutil.Process | None, what: str) -> psutil.Process:
    if process is None:
        raise BenchError(f"the {what} process is not running")
    return process


def triton_process(url: str) -> psutil.Process:
    """The ``tritonserver`` listening on ``url``'s port (its python-backend stubs are its children)."""
    port = url.rpartition(":")[2]
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "tritonserver" and f"--grpc-port={port}" in (process.info["cmdline"] or []):
            return process
    raise BenchError(f"no tritonserver process with --grpc-port={port} on this machine")


def tree_cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its live descendants."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def triton_version(url: str) -> str:
    async with InferenceServerClient(url=url) as client:
        metadata = await client.get_server_metadata()
    return str(metadata.version)


async def unload(url: str, name: str) -> None:
    """Ask Triton to unload ``name``; a failure is printed, not raised (the run's cleanup)."""
    try:
        async with InferenceServerClient(url=url) as client:
            await client.unload_model(name, client_timeout=60)
    except InferenceServerException as exc:
        print(f"could not unload {name} from Triton: {exc}", file=sys.stderr)


def versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed version per distribution name ("not installed" when absent)."""
    found = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


SOURCE_ROOTS = ("services/inference/src", "libs/core/src", "libs/api/src")


def code_description() -> str:
    """The inference code measured: git HEAD of the checkout the harness runs from, noting uncommitted
    changes under the inference service or the libraries it runs on."""
    root = repo_root()
    head = _git(root, "rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git(root, "status", "--porcelain", "--", *SOURCE_ROOTS)
    note = " + uncommitted changes in services/inference or libs" if dirty else ""
    return f"working tree at git {head}{note}"
