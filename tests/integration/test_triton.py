"""Integration test against a running Triton Inference Server (the local one is started by `aimesh up`).

What it proves: the server answers over HTTP and gRPC (and names its version), a python-backend model
exported into the server's model repository loads through the model-control API, serves a batch and
concurrent requests over gRPC with the numbers numpy computes itself, and unloads.

Environment:
- ``AIMESH_TRITON_GRPC`` (default ``127.0.0.1:8001``) and ``AIMESH_TRITON_HTTP`` (default ``127.0.0.1:8000``);
- ``AIMESH_TRITON_MODEL_REPO``: the server's ``--model-repository`` (default
  ``$AIMESH_HOME/data/triton/models``, ``AIMESH_HOME`` defaulting to ``<repo>/.aimesh``).

The test fails (never skips) when the server is not reachable. Each run copies the sample model
``deploy/local/triton/models/linear_scorer`` under a unique name with random weights, and removes it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio
from numpy.typing import NDArray
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

pytestmark = [pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MODEL = REPO_ROOT / "deploy" / "local" / "triton" / "models" / "linear_scorer"
N_FEATURES = 4
START_HINT = "start the local stack with `aimesh up --infra-only`"


def _grpc_target() -> str:
    return os.environ.get("AIMESH_TRITON_GRPC", "127.0.0.1:8001")


def _http_url() -> str:
    return "http://" + os.environ.get("AIMESH_TRITON_HTTP", "127.0.0.1:8000")


def _model_repo() -> Path:
    if "AIMESH_TRITON_MODEL_REPO" in os.environ:
        return Path(os.environ["AIMESH_TRITON_MODEL_REPO"])
    home = Path(os.environ.get("AIMESH_HOME", REPO_ROOT / ".aimesh"))
    return home / "data" / "triton" / "models"


def _server_version() -> str:
    """The version the server reports on ``GET /v2``; fails the calling test with the fix when nothing answers."""
    url = f"{_http_url()}/v2"
    problem = ""
    try:
        meta = httpx.get(url, timeout=5.0).json()
    except (httpx.HTTPError, ValueError) as exc:
        problem = f"Triton is not reachable at {url} ({exc!r}): {START_HINT}"
    if problem:
        pytest.fail(problem, pytrace=False)
    assert meta.get("name") == "triton", f"{url} is not a Triton server: {meta}"
    return str(meta["version"])


async def _require_grpc(client: InferenceServerClient) -> None:
    """Fail the calling test with the fix unless the server answers ``ServerLive`` over gRPC.

    Liveness, not server readiness: Triton reports not-ready while any model (another test's, being
    unloaded) is not ready; this test checks its own model's readiness.
    """
    problem = ""
    try:
        ready = await client.is_server_live(client_timeout=5.0)
    except InferenceServerException as exc:
        problem = f"Triton gRPC is not reachable at {_grpc_target()} ({exc}): {START_HINT}"
    if problem:
        pytest.fail(problem, pytrace=False)
    assert ready, f"Triton at {_grpc_target()} answers but is not live"


@pytest_asyncio.fixture
async def client() -> AsyncIterator[InferenceServerClient]:
    """A gRPC client (it connects lazily, on the first call)."""
    grpc_client = InferenceServerClient(url=_grpc_target())
    try:
        yield grpc_client
    finally:
        await grpc_client.close()


Export = Callable[[], tuple[str, NDArray[np.float32], float]]


@pytest.fixture
def export_model() -> Iterator[Export]:
    """A function that copies the sample model into the repository under a unique name, random weights.

    It returns ``(name, weights[4, 1], bias)``; every copy is removed at teardown.
    """
    exported: list[Path] = []

    def export() -> tuple[str, NDArray[np.float32], float]:
        repo = _model_repo()
        if not repo.is_dir():
            pytest.fail(
                f"model repository {repo} does not exist: {START_HINT}, or set AIMESH_TRITON_MODEL_REPO "
                "to the server's --model-repository",
                pytrace=False,
            )
        name = f"linear_scorer_it_{uuid.uuid4().hex[:8]}"
        rng = np.random.default_rng()
        weights = rng.uniform(-2.0, 2.0, size=(N_FEATURES, 1)).astype(np.float32)
        bias = float(np.float32(rng.uniform(-1.0, 1.0)))
        target = repo / name
        exported.append(target)
        shutil.copytree(SAMPLE_MODEL, target, ignore=shutil.ignore_patterns("__pycache__"))
        config = target / "config.pbtxt"
        text = config.read_text()
        for key, value in (("weights", ",".join(repr(float(w)) for w in weights.ravel())), ("bias", repr(bias))):
            text, n = re.subn(rf'(key: "{key}"\s*value: \{{ string_value: )"[^"]*"', rf'\g<1>"{value}"', text)
            assert n == 1, f"{SAMPLE_MODEL}/config.pbtxt has no parameter {key!r} to set"
        config.write_text(text)
        return name, weights, bias

    try:
        yield export
    finally:
        for target in exported:
            shutil.rmtree(target, ignore_errors=True)


async def _infer(client: InferenceServerClient, model: str, x: NDArray[np.float32]) -> NDArray[np.float32]:
    inp = InferInput("INPUT__0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = await client.infer(model, [inp], outputs=[InferRequestedOutput("OUTPUT__0")], client_timeout=30.0)
    out = result.as_numpy("OUTPUT__0")
    assert out is not None, f"{model} returned no OUTPUT__0"
    return np.asarray(out)


@pytest.mark.asyncio
async def test_server_metadata(
    client: InferenceServerClient,
    record_property: Callable[[str, object], None],
    record_infra_version: Callable[[str, str], None],
) -> None:
    server_version = _server_version()
    record_infra_version("NVIDIA Triton Inference Server", server_version)
    await _require_grpc(client)
    meta = await client.get_server_metadata(as_json=True, client_timeout=5.0)
    print(f"Triton server version {server_version} (HTTP {_http_url()}, gRPC {_grpc_target()})")
    record_property("triton_version", server_version)
    assert meta["name"] == "triton"
    assert meta["version"] == server_version
    assert "model_repository" in meta["extensions"], "the model-control API is needed to load models"


@pytest.mark.asyncio
async def test_load_infer_unload(
    client: InferenceServerClient, export_model: Export, record_property: Callable[[str, object], None]
) -> None:
    server_version = _server_version()
    await _require_grpc(client)
    name, weights, bias = export_model()
    record_property("triton_version", server_version)
    print(f"Triton {server_version}: loading {name} from {_model_repo()}")
    try:
        await client.load_model(name, client_timeout=120.0)
    except InferenceServerException as exc:
        pytest.fail(
            f"loading {name} failed: {exc}. AIMESH_TRITON_MODEL_REPO ({_model_repo()}) must be the server's "
            "--model-repository, and the server must run in explicit model-control mode",
            pytrace=False,
        )
    try:
        assert await client.is_model_ready(name, client_timeout=5.0)
        config = (await client.get_model_config(name, as_json=True, client_timeout=5.0))["config"]
        assert config["backend"] == "python"
        assert config["max_batch_size"] == 64

        rng = np.random.default_rng(7)
        batch = rng.standard_normal((32, N_FEATURES)).astype(np.float32)
        out = await _infer(client, name, batch)
        assert out.shape == (32, 1)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, batch @ weights + np.float32(bias), rtol=1e-5, atol=1e-5)

        singles = [rng.standard_normal((1, N_FEATURES)).astype(np.float32) for _ in range(16)]
        outs = await asyncio.gather(*(_infer(client, name, x) for x in singles))
        for x, y in zip(singles, outs, strict=True):
            np.testing.assert_allclose(y, x @ weights + np.float32(bias), rtol=1e-5, atol=1e-5)
    finally:
        await client.unload_model(name, client_timeout=60.0)
    state = await _wait_unloaded(client, name)
    assert state == "UNAVAILABLE", f"{name} is {state} 60s after unload"
    assert not await client.is_model_ready(name, client_timeout=5.0)


async def _wait_unloaded(client: InferenceServerClient, model: str, within: float = 60.0) -> str:
    """Poll the repository index until ``model`` is UNAVAILABLE (unload returns before the stub exits)."""
    state = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        index = await client.get_model_repository_index(as_json=True, client_timeout=5.0)
        state = next((m.get("state", "") for m in index.get("models", []) if m["name"] == model), "")
        if state == "UNAVAILABLE":
            break
        await asyncio.sleep(0.25)
    return state
