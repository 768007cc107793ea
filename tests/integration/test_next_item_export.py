"""A ``sequence_next_item`` model exported into the real Triton: the two-output python-backend model loads,
its parity check against the TorchScript module passes (``Deployer.serve``, as a run does it), and its
outputs are the top-k items (vocabulary indexes, never 0, best first) with descending softmax scores, for a
batch and for concurrent single-row requests (dynamic batching). The export writes the native variants'
files beside it (``configs/*.pbtxt``, ``model.onnx``), which the local Triton ignores.

Needs the local Triton (`aimesh up --infra-only`); fails, never skips, when it is not there. The model
directory is unique per run and removed at the end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from tritonclient.grpc.aio import InferenceServerClient

from aimesh.api.common.v1 import signature_pb2
from aimesh.api.training.v1 import training_pb2
from aimesh.core.signature import InputEncoder
from aimesh.training.deploy import Deployer, output_tensors, output_widths
from aimesh.training.export import CONFIGS_DIR, export_version
from aimesh.training.model import load_torchscript, predict_outputs, save_torchscript
from aimesh.training.trainers.sequence_next_item import TRAINER
from aimesh.training.triton import TritonModelServer
from aimesh.training.triton_config import VARIANTS

pytestmark = [pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sequential = _load("training_sequential_data", REPO_ROOT / "services" / "training" / "tests" / "sequential.py")


def _model_repo() -> Path:
    if "AIMESH_TRITON_MODEL_REPO" in os.environ:
        return Path(os.environ["AIMESH_TRITON_MODEL_REPO"])
    return Path(os.environ.get("AIMESH_HOME", REPO_ROOT / ".aimesh")) / "data" / "triton" / "models"


async def test_a_next_item_model_serves_its_top_k_in_triton_like_torchscript(
    endpoints: Any, unique: str, tmp_path: Path
) -> None:
    repo = _model_repo()
    if not repo.is_dir():
        pytest.fail(f"Triton model repository {repo} does not exist: start `aimesh up --infra-only`", pytrace=False)
    data = sequential.dataset(150, 120, 20, max_len=10, seed=2)
    params = {**TRAINER.defaults, "epochs": "3", "embedding_dim": "16", "hidden": "32", "max_len": "10"}
    params["export_k"] = "25"
    fitted = TRAINER.fit(data, params, threads=1, progress=lambda epoch, loss: None)
    signature = signature_pb2.ModelSignature(
        inputs=data.inputs, outputs=fitted.outputs, task=signature_pb2.TASK_NEXT_ITEM, input_tensor="INPUT__0"
    )
    assert output_tensors(signature) == ["OUTPUT__0", "OUTPUT__1"] and output_widths(signature) == [25, 25]
    torchscript = tmp_path / "model.pt"
    save_torchscript(fitted.module, torchscript)
    name = f"next_item_it_{unique}"
    export_version(
        repo,
        name,
        1,
        torchscript,
        model_name=name,
        n_inputs=InputEncoder(signature.inputs).width,
        output_widths=output_widths(signature),
    )
    assert sorted(p.name for p in (repo / name / CONFIGS_DIR).iterdir()) == sorted(f"{v}.pbtxt" for v in VARIANTS)
    assert {"model.pt", "model.py", "model.onnx"} <= {p.name for p in (repo / name / "1").iterdir()}
    server = TritonModelServer(endpoints.triton_grpc)
    deployer = Deployer(runs=None, registry=None, relay=None, model_server=server, model_repository=repo)  # type: ignore[arg-type]
    version = training_pb2.ModelVersion(
        model_name=name, version=1, triton_model_name=name, triton_model_version=1, signature=signature
    )
    triton = InferenceServerClient(url=endpoints.triton_grpc)
    try:
        check = await deployer.serve(version, np.ascontiguousarray(data.x_eval[:100]))
        assert check.max_abs_diff <= 1e-5 and check.batch_rows == 100
        print(
            f"Triton load {check.load_seconds:.2f}s, 100 rows {check.infer_seconds * 1000:.1f} ms, "
            f"diff {check.max_abs_diff:.2e}"
        )

        expected = predict_outputs(load_torchscript(repo / name / "1" / "model.pt"), data.x_eval)
        served = await server.infer(name, 1, data.x_eval[:150], output_tensors(signature))
        assert served.shape == (150, 50)
        items, scores = served[:, :25], served[:, 25:]
        vocabulary = len(data.inputs[0].vocabulary)
        assert items.min() >= 1 and items.max() <= vocabulary and np.all(items == np.round(items))
        assert np.all(np.diff(scores, axis=1) <= 0) and np.all(scores.sum(axis=1) <= 1.0 + 1e-5)
        assert np.array_equal(items[:, 0], expected[:, 0])  # the best item is the module's best item
        np.testing.assert_allclose(scores, expected[:, 25:], atol=1e-5)

        singles = await asyncio.gather(
            *(server.infer(name, 1, data.x_eval[i : i + 1], output_tensors(signature)) for i in range(16))
        )
        for i, one in enumerate(singles):
            np.testing.assert_allclose(one[0, 25:], expected[i, 25:], atol=1e-5)
            assert one[0, 0] == expected[i, 0]
        empty_history = await server.infer(name, 1, np.zeros((1, 10), dtype=np.float32), output_tensors(signature))
        assert empty_history[0, :25].min() >= 1  # padding is never an answer
        config = (await triton.get_model_config(name, as_json=True, client_timeout=5.0))["config"]
        assert [o["name"] for o in config["output"]] == ["OUTPUT__0", "OUTPUT__1"]
        assert config["backend"] == "python" and config["instance_group"][0]["kind"] == "KIND_CPU"
    finally:
        try:
            await triton.unload_model(name, client_timeout=60)
        finally:
            await triton.close()
            shutil.rmtree(repo / name, ignore_errors=True)
