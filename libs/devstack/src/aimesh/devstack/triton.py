"""NVIDIA Triton Inference Server, run locally from the ``tritonserver`` binary of the nvidia-pytriton wheel.

No Docker and no GPU: the wheel ships Triton 2.51 with the python backend only, so the local stack serves
python-backend models on CPU. The server runs in ``--model-control-mode explicit`` against an (initially
empty) model repository under the data directory; models are loaded and unloaded through the
model-control API (``POST /v2/repository/models/<name>/load`` or gRPC ``RepositoryModelLoad``).

How it is wired (the same approach pytriton takes when it launches the server itself):

- the python backend (``libtriton_python.so``, ``triton_python_backend_utils.py``) and the
  ``triton_python_backend_stub`` built for the running interpreter's ``major.minor`` are copied into
  ``<dist>/triton/backends/python``, passed as ``--backend-directory``;
- ``LD_LIBRARY_PATH`` starts with the running interpreter's libpython directory (sysconfig ``LIBDIR``) and
  the wheel's ``nvidia_pytriton.libs``: the copied stub loses its ``$ORIGIN`` RPATH, and without the right
  libpython first it binds the system's libpython and fails;
- ``PATH`` starts with the running environment's ``bin`` so the stub's embedded Python resolves its
  prefix to this virtualenv (numpy and the model's other imports come from there).
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import httpx
from rich.console import Console

from aimesh.devstack.component import Health
from aimesh.devstack.errors import DevstackError
from aimesh.devstack.paths import Paths
from aimesh.devstack.process import spawn
from aimesh.devstack.server import HOST, Server

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002

_PYTHON_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
_STUB = "triton_python_backend_stub"
_LOG_TAIL_LINES = 30


def model_repository(paths: Paths) -> Path:
    """The Triton model repository of the local stack: ``<home>/data/triton/models``.

    Services that export models (training) write ``<repo>/<model>/config.pbtxt`` and
    ``<repo>/<model>/<version>/...`` here, then ask Triton to load them through the model-control API.
    Pure function: creates nothing.
    """
    return paths.data("triton") / "models"


class Triton(Server):
    """Triton Inference Server (python backend, CPU), bound to 127.0.0.1.

    Contract: ``install`` is idempotent and only copies files (it raises ``DevstackError`` when the
    nvidia-pytriton wheel, the stub for this Python or this Python's shared libpython is missing);
    ``start`` refuses with ``DevstackError`` when a port is taken and returns at once without waiting;
    ``wait_ready`` blocks until ``GET /v2/health/ready`` answers 200; ``health`` never raises.
    """

    name = "triton"

    def __init__(
        self,
        paths: Paths,
        *,
        console: Console | None = None,
        http_port: int = DEFAULT_HTTP_PORT,
        grpc_port: int = DEFAULT_GRPC_PORT,
        metrics_port: int = DEFAULT_METRICS_PORT,
        exit_timeout_s: int = 10,
    ) -> None:
        super().__init__(paths, console=console)
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.exit_timeout_s = exit_timeout_s
        self.ports = (http_port, grpc_port, metrics_port)

    @property
    def model_repository(self) -> Path:
        """Where models are exported for this server (see the module-level ``model_repository``)."""
        return model_repository(self.paths)

    @property
    def backend_directory(self) -> Path:
        """The ``--backend-directory`` that ``install`` fills: ``<dist>/triton/backends``."""
        return self.paths.dist / "triton" / "backends"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        """``host:port`` for ``tritonclient.grpc`` clients."""
        return f"{HOST}:{self.grpc_port}"

    @property
    def shm_prefix(self) -> str:
        """Prefix of this server's python-backend regions in ``/dev/shm`` (one region per model instance)."""
        return f"aimesh_triton_{self.grpc_port}_"

    def install(self) -> None:
        """Copy the python backend and this Python's stub to ``backend_directory``; create the repository.

        Idempotent: a file is rewritten only when it differs from the wheel's (an upgraded wheel is picked
        up), atomically, so a running server never sees a half-written file.
        """
        wheel = _wheel_dir()
        _libpython_dir()
        stub = wheel / "python_backend_stubs" / _python_version() / _STUB
        if not stub.is_file():
            raise DevstackError(
                self.name,
                f"the nvidia-pytriton wheel has no backend stub for Python {_python_version()} ({stub})",
                "run the devstack with a Python the wheel supports (3.8-3.13), from the project virtualenv",
            )
        target = self.backend_directory / "python"
        target.mkdir(parents=True, exist_ok=True)
        sources = [wheel / "backends" / "python" / f for f in _PYTHON_BACKEND_FILES] + [stub]
        for src in sources:
            _copy_if_changed(src, target / src.name)
        self.model_repository.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        """The exact ``tritonserver`` command line ``start`` runs (after ``install``)."""
        return [
            str(_wheel_dir() / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            "--model-control-mode=explicit",
            # Our configs are complete (training writes every field): without this the python backend
            # starts one extra stub per load only to ask model.py for a config, which imports torch and
            # made every load (and so a restarted Triton's recovery) about 40 % slower.
            "--disable-auto-complete-config",
            f"--backend-directory={self.backend_directory}",
            f"--http-address={HOST}",
            f"--http-port={self.http_port}",
            f"--grpc-address={HOST}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={HOST}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            # A prefix of our own keeps this server's shared-memory regions apart from any other
            # Triton (a pytriton in a test, a second stack) on the machine.
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]

    def environment(self) -> dict[str, str]:
        """The variables ``start`` sets on top of the caller's environment (see the module docstring)."""
        lib_path = [str(_libpython_dir()), str(_libs_dir())]
        if os.environ.get("LD_LIBRARY_PATH"):
            lib_path.append(os.environ["LD_LIBRARY_PATH"])
        return {
            "LD_LIBRARY_PATH": os.pathsep.join(lib_path),
            "PATH": os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", os.defpath)]),
        }

    def start(self) -> None:
        """Spawn ``tritonserver`` in the background unless the PID file names a live one. Does not wait.

        Raises ``DevstackError`` when ``install`` has not run or when one of the three ports is taken.
        """
        if self.is_running():
            return
        if not (self.backend_directory / "python" / _STUB).is_file():
            raise DevstackError(
                self.name,
                f"the python backend is not installed in {self.backend_directory}",
                "run `aimesh setup` (or call Triton.install()) first",
            )
        self.check_ports()
        self._remove_stale_shm()
        self.model_repository.mkdir(parents=True, exist_ok=True)
        spawn(
            self.command(),
            pidfile=self.pidfile,
            logfile=self.logfile,
            env=self.environment(),
            cwd=self.paths.data("triton"),
        )

    def wait_ready(self, timeout: float) -> None:
        """Poll ``GET /v2/health/ready`` every 0.5 s until it answers 200.

        Raises ``DevstackError`` at once when the process exits, or after ``timeout`` seconds; both name the
        log file and quote its last lines.
        """
        with httpx.Client(timeout=2.0) as client:
            self.wait_for(
                lambda: self._ready(client),
                timeout=timeout,
                what=f"{self.http_url}/v2/health/ready does not answer 200",
                fix="a model that fails to load keeps the server unready (strict readiness): "
                f"fix or remove it from {self.model_repository}",
                log_lines=_LOG_TAIL_LINES,
            )

    def health(self) -> Health:
        """Probe the server: ``GET /v2`` for the real version, ``/v2/health/live``, the repository index.

        Healthy means live. Not server readiness: in explicit model-control mode Triton reports
        not-ready while any model is loading or unloading (e.g. training restoring its champion at
        start), which is normal operation; the detail shows how many models are ready or loading.
        """
        running = self.is_running()
        endpoint = f"grpc {self.grpc_target}, http {self.http_url}"
        try:
            with httpx.Client(timeout=2.0) as client:
                meta = client.get(f"{self.http_url}/v2")
                meta.raise_for_status()
                version = str(meta.json().get("version"))
                live = client.get(f"{self.http_url}/v2/health/live").status_code == 200
                index = client.post(f"{self.http_url}/v2/repository/index", json={})
                models = index.json() if index.status_code == 200 else []
        except (httpx.HTTPError, ValueError) as exc:
            detail = f"not answering: {exc}" if running else "not running"
            return Health(self.name, running, False, None, endpoint, detail)
        states = [m.get("state") for m in models if isinstance(m, dict)]
        detail = f"{states.count('READY')} model(s) ready"
        if "LOADING" in states or "UNLOADING" in states:
            detail += f", {states.count('LOADING') + states.count('UNLOADING')} loading/unloading"
        detail += f", repository {self.model_repository}"
        if not running:
            detail += "; answering, but not started by aimesh (no PID file)"
        return Health(self.name, running, live, version, endpoint, detail)

    def _remove_stale_shm(self) -> None:
        """Drop regions a killed server of ours left in ``/dev/shm`` (its ports are free: none is in use)."""
        shm = Path("/dev/shm")  # noqa: S108 - where the python backend keeps its regions, not a temp file
        if shm.is_dir():
            for region in shm.glob(f"{self.shm_prefix}*"):
                region.unlink(missing_ok=True)

    def _ready(self, client: httpx.Client) -> bool:
        try:
            return client.get(f"{self.http_url}/v2/health/ready").status_code == 200
        except httpx.HTTPError:
            return False


def _python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _wheel_dir() -> Path:
    """``<site-packages>/pytriton/tritonserver`` of the installed nvidia-pytriton wheel (not imported)."""
    spec = importlib.util.find_spec("pytriton")
    locations: Sequence[str] = (spec.submodule_search_locations or []) if spec else []
    for location in locations:
        dist = Path(location) / "tritonserver"
        if (dist / "bin" / "tritonserver").is_file():
            return dist
    raise DevstackError(
        "triton",
        "the nvidia-pytriton wheel (it ships the tritonserver binary) is not installed in this environment",
        "run `make setup` (it installs nvidia-pytriton from constraints.txt into .venv)",
    )


def _libs_dir() -> Path:
    """The wheel's bundled shared libraries (``nvidia_pytriton.libs``, next to ``pytriton/``)."""
    return _wheel_dir().parent.parent / "nvidia_pytriton.libs"


def _libpython_dir() -> Path:
    """The directory holding the running interpreter's shared libpython; raises when it has none."""
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME") or f"libpython{_python_version()}.so.1.0"
    if not libdir or not (Path(libdir) / soname).is_file():
        raise DevstackError(
            "triton",
            f"{sys.executable} has no shared {soname} in {libdir}; the python backend stub needs it",
            "use a Python built with --enable-shared "
            "(pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.11) and recreate .venv",
        )
    return Path(libdir)


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        return
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)
