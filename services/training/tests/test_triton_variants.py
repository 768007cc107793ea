"""The exported Triton variants: every config parses strictly as Triton's ``ModelConfig`` and describes the
files beside it (backend or platform, batch size, tensor names, types and widths, instance kind); the
served ``config.pbtxt`` is the chosen variant's; ``model.pt`` and ``model.onnx`` score like the trained
module, for a one-output tabular model and the two-output next-item model; modules the native backends
cannot serve are refused when served and left out otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from google.protobuf import text_format
from torch import nn
from tritonclient.grpc import model_config_pb2

from aimesh.api.common.v1 import signature_pb2
from aimesh.core.errors import FailedPrecondition
from aimesh.core.signature import InputEncoder
from aimesh.training.deploy import output_widths
from aimesh.training.export import CONFIGS_DIR, export_version
from aimesh.training.model import load_torchscript, predict_outputs, save_torchscript
from aimesh.training.settings import TrainingSettings
from aimesh.training.trainers.sequence_next_item import TRAINER
from aimesh.training.trainers.tabular import BinaryClassifier, TabularEncoder, mlp
from aimesh.training.triton_config import MAX_BATCH_SIZE, MODEL_FILES, VARIANTS, TritonVariant, model_config

from . import sequential  # type: ignore[attr-defined]

ort = pytest.importorskip("onnxruntime")  # pinned in the dev group; the ONNX comparisons need it

EXPECTED_RUNTIME = {  # variant -> (backend, platform, instance kind)
    "python": ("python", "", model_config_pb2.ModelInstanceGroup.KIND_CPU),
    "pytorch_libtorch": ("", "pytorch_libtorch", model_config_pb2.ModelInstanceGroup.KIND_GPU),
    "onnxruntime": ("", "onnxruntime_onnx", model_config_pb2.ModelInstanceGroup.KIND_GPU),
}


def _parse(path: Path) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(path.read_text(encoding="utf-8"), config)  # strict: an unknown field raises
    return config


def _tabular(x: np.ndarray[Any, Any]) -> nn.Module:
    torch.manual_seed(0)
    inputs = [
        signature_pb2.SignatureInput(name="v:x", kind=signature_pb2.INPUT_KIND_NUMERIC),
        signature_pb2.SignatureInput(name="v:c", kind=signature_pb2.INPUT_KIND_CATEGORICAL, vocabulary=["a", "b"]),
    ]
    encoder = TabularEncoder(inputs, x)
    return BinaryClassifier(encoder, mlp(encoder.width, (8, 4), 1)).eval()


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray[Any, Any], list[int]]:
    rng = np.random.default_rng(1)
    x = np.stack([rng.normal(size=64), rng.integers(0, 3, size=64)], axis=1).astype(np.float32)
    path = tmp_path_factory.mktemp("tabular") / "model.pt"
    save_torchscript(_tabular(x), path)
    return path, x, [1]


@pytest.fixture(scope="module")
def next_item(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray[Any, Any], list[int]]:
    data = sequential.dataset(80, 30, 12, max_len=8, seed=4)
    params = {**TRAINER.defaults, "epochs": "2", "embedding_dim": "8", "hidden": "16", "max_len": "8"}
    fitted = TRAINER.fit(data, {**params, "export_k": "10"}, threads=1, progress=lambda epoch, loss: None)
    signature = signature_pb2.ModelSignature(inputs=data.inputs, outputs=fitted.outputs)
    assert InputEncoder(signature.inputs).width == data.x_eval.shape[1]
    path = tmp_path_factory.mktemp("next_item") / "model.pt"
    save_torchscript(fitted.module, path)
    return path, np.ascontiguousarray(data.x_eval[:60]), output_widths(signature)


def _export(repo: Path, model: tuple[Path, np.ndarray[Any, Any], list[int]], variant: TritonVariant) -> Path:
    torchscript, x, widths = model
    export_version(
        repo, "m", 1, torchscript, model_name="m", n_inputs=x.shape[1], output_widths=widths, variant=variant
    )
    return repo / "m"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("which", ["tabular", "next_item"])
def test_every_variant_config_parses_and_describes_the_exported_files(
    variant: TritonVariant, which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = request.getfixturevalue(which)
    _, x, widths = model
    model_dir = _export(tmp_path, model, variant)
    assert sorted(p.name for p in (model_dir / CONFIGS_DIR).iterdir()) == sorted(f"{v}.pbtxt" for v in VARIANTS)
    assert (model_dir / "config.pbtxt").read_text() == (model_dir / CONFIGS_DIR / f"{variant}.pbtxt").read_text()
    for candidate in VARIANTS:
        config = _parse(model_dir / CONFIGS_DIR / f"{candidate}.pbtxt")
        backend, platform, kind = EXPECTED_RUNTIME[candidate]
        assert (config.backend, config.platform) == (backend, platform)
        assert config.max_batch_size == MAX_BATCH_SIZE and config.HasField("dynamic_batching")
        assert [(g.kind, g.count) for g in config.instance_group] == [(kind, 1)]
        assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
            ("INPUT__0", model_config_pb2.TYPE_FP32, [x.shape[1]])
        ]
        assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
            (f"OUTPUT__{j}", model_config_pb2.TYPE_FP32, [w]) for j, w in enumerate(widths)
        ]
        assert config.default_model_filename in ("", MODEL_FILES[candidate])
        assert (model_dir / "1" / MODEL_FILES[candidate]).is_file()
    onnx_model = onnx.load(str(model_dir / "1" / "model.onnx"))
    assert [i.name for i in onnx_model.graph.input] == ["INPUT__0"]
    assert [o.name for o in onnx_model.graph.output] == [f"OUTPUT__{j}" for j in range(len(widths))]
    for tensor in [*onnx_model.graph.input, *onnx_model.graph.output]:
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert tensor.type.tensor_type.shape.dim[0].dim_param == "batch"  # the batch dimension is dynamic


@pytest.mark.parametrize("which", ["tabular", "next_item"])
def test_model_pt_and_model_onnx_score_like_the_trained_module(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = request.getfixturevalue(which)
    torchscript, x, widths = model
    model_dir = _export(tmp_path, model, "onnxruntime")
    expected = predict_outputs(load_torchscript(torchscript), x)
    served_pt = torch.jit.load(str(model_dir / "1" / "model.pt"))  # what the libtorch backend loads
    np.testing.assert_array_equal(predict_outputs(served_pt, x), expected)
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    for rows in (x, x[:1]):  # the batch dimension is dynamic
        outputs = session.run([f"OUTPUT__{j}" for j in range(len(widths))], {"INPUT__0": rows})
        assert [o.shape for o in outputs] == [(len(rows), w) for w in widths]
        assert all(o.dtype == np.float32 for o in outputs)
        got = np.concatenate(outputs, axis=1)
        if which == "next_item":  # items are compared where their scores differ; ties may swap places
            np.testing.assert_array_equal(got[:, 0], expected[: len(rows), 0])
        np.testing.assert_allclose(got, expected[: len(rows)], rtol=0, atol=1e-5)


def test_the_python_variant_config_is_unchanged_by_default(tabular: Any, tmp_path: Path) -> None:
    torchscript, x, widths = tabular
    export_version(tmp_path, "m", 1, torchscript, model_name="m", n_inputs=x.shape[1], output_widths=widths)
    text = (tmp_path / "m" / "config.pbtxt").read_text()
    assert 'backend: "python"' in text and "instance_group [{ kind: KIND_CPU, count: 1 }]" in text
    assert "platform" not in text and "default_model_filename" not in text


def test_gpu_instances_sets_the_native_instance_count_only() -> None:
    native = model_config_pb2.ModelConfig()
    text_format.Parse(model_config("onnxruntime", 3, [1], gpu_instances=2), native)
    assert [(g.kind, g.count) for g in native.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 2)]
    python = model_config_pb2.ModelConfig()
    text_format.Parse(model_config("python", 3, [1], gpu_instances=2), python)
    assert [(g.kind, g.count) for g in python.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
    with pytest.raises(ValueError, match="gpu_instances"):
        model_config("onnxruntime", 3, [1], gpu_instances=0)
    with pytest.raises(ValueError, match="unknown Triton variant"):
        model_config("tensorrt", 3, [1])  # type: ignore[arg-type]


class _Int64Output(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1].long()


def test_a_module_the_native_backends_cannot_serve_is_refused_when_served_and_left_out_otherwise(
    tmp_path: Path,
) -> None:
    torchscript = tmp_path / "int64.pt"
    save_torchscript(_Int64Output(), torchscript)
    repo = tmp_path / "repo"
    for variant in ("pytorch_libtorch", "onnxruntime"):
        with pytest.raises(FailedPrecondition, match=r"cannot be served by .*FP32 \[batch, width\].*torch\.int64"):
            export_version(repo, "m", 1, torchscript, model_name="m", n_inputs=2, output_widths=[1], variant=variant)
        assert not (repo / "m" / "1").exists() and not (repo / "m" / "config.pbtxt").exists()
    exported = export_version(repo, "m", 1, torchscript, model_name="m", n_inputs=2, output_widths=[1])
    assert sorted(p.name for p in exported.parent.iterdir()) == ["model.pt", "model.py"]
    assert [p.name for p in (repo / "m" / CONFIGS_DIR).iterdir()] == ["python.pbtxt"]
    assert _parse(repo / "m" / "config.pbtxt").backend == "python"


def test_a_module_with_fewer_outputs_than_the_signature_is_refused_naming_the_counts(
    tabular: Any, tmp_path: Path
) -> None:
    torchscript, x, _ = tabular
    with pytest.raises(FailedPrecondition, match="the module returns 1, the signature has 2"):
        export_version(
            tmp_path,
            "m",
            1,
            torchscript,
            model_name="m",
            n_inputs=x.shape[1],
            output_widths=[1, 1],
            variant="pytorch_libtorch",
        )


def test_the_setting_chooses_the_variant_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TrainingSettings().triton_variant == "python"
    monkeypatch.setenv("TRAINING_TRITON_VARIANT", "onnxruntime")
    monkeypatch.setenv("TRAINING_TRITON_GPU_INSTANCES", "2")
    settings = TrainingSettings()
    assert (settings.triton_variant, settings.triton_gpu_instances) == ("onnxruntime", 2)
    monkeypatch.setenv("TRAINING_TRITON_VARIANT", "tensorrt")
    with pytest.raises(ValueError, match=r"python.*pytorch_libtorch.*onnxruntime"):
        TrainingSettings()
