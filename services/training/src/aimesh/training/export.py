"""Export a trained version into the Triton model repository.

Layout: ``<repo>/<triton_name>/config.pbtxt`` (the served variant's), ``<repo>/<triton_name>/configs/
<variant>.pbtxt`` (every variant written, see ``aimesh.training.triton_config``) and
``<repo>/<triton_name>/<version>/{model.pt, model.py, model.onnx}``. Triton reads only ``config.pbtxt``
unless started with ``--model-config-name=<variant>`` (then ``configs/<variant>.pbtxt``); the version
files a variant does not use are ignored. The version directory is staged beside the model directory and
renamed into place, so Triton never sees half a version; re-exporting the same version replaces it
(idempotent).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from aimesh.core.errors import FailedPrecondition
from aimesh.training.native import check_native_outputs, write_onnx
from aimesh.training.triton_config import NATIVE_VARIANTS, TritonVariant, model_config

log = logging.getLogger(__name__)
CONFIGS_DIR = "configs"
"""Per-variant configs in the model directory (Triton's ``--model-config-name`` folder)."""

OWNER_FILE = "aimesh-model.txt"
"""Written into each exported Triton model directory: the registered model it belongs to."""


def backend_source() -> str:
    """The python-backend ``model.py`` (module ``aimesh.training.triton_backend``)."""
    return resources.files("aimesh.training").joinpath("triton_backend.py").read_text(encoding="utf-8")


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def directory_owner(repo: Path, triton_name: str) -> str | None:
    """The registered model that ``<repo>/<triton_name>`` was exported for (None: no such directory or marker)."""
    marker = repo / triton_name / OWNER_FILE
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def _write_native(
    staging: Path, torchscript: Path, n_inputs: int, output_widths: Sequence[int]
) -> dict[TritonVariant, FailedPrecondition]:
    """Write ``model.onnx`` into ``staging``; returns why each native variant cannot serve the module (none:
    both can)."""
    try:
        check_native_outputs(torchscript, n_inputs, output_widths)
    except FailedPrecondition as exc:
        return dict.fromkeys(NATIVE_VARIANTS, exc)
    try:
        write_onnx(torchscript, staging / "model.onnx", n_inputs, len(output_widths))
    except FailedPrecondition as exc:
        (staging / "model.onnx").unlink(missing_ok=True)
        return {"onnxruntime": exc}
    return {}


def _write_configs(
    model_dir: Path,
    refused: dict[TritonVariant, FailedPrecondition],
    n_inputs: int,
    output_widths: Sequence[int],
    gpu_instances: int,
) -> None:
    configs = model_dir / CONFIGS_DIR
    configs.mkdir(exist_ok=True)
    for candidate in ("python", *NATIVE_VARIANTS):
        path = configs / f"{candidate}.pbtxt"
        if candidate in refused:
            path.unlink(missing_ok=True)
        else:
            text = model_config(candidate, n_inputs, output_widths, gpu_instances=gpu_instances)
            _write_text_atomically(path, text)


def export_version(
    repo: Path,
    triton_name: str,
    version: int,
    torchscript: Path,
    *,
    model_name: str,
    n_inputs: int,
    output_widths: Sequence[int],
    variant: TritonVariant = "python",
    gpu_instances: int = 1,
) -> Path:
    """Copy ``torchscript`` into ``<repo>/<triton_name>/<version>/model.pt`` with ``model.py`` and
    ``model.onnx``, every variant's config under ``configs/``, and ``variant``'s as ``config.pbtxt``
    (``gpu_instances``: the native variants' GPU instance count).

    Returns the exported ``model.pt``. Raises ``FailedPrecondition`` when the directory belongs to another
    registered model (its marker file names it) or when ``variant`` is a native one the module cannot be
    served by (a non-FP32 output, an operator ONNX lacks ...; nothing of the version is written then);
    ``OSError`` when the repository is not writable. A native variant that is not served and cannot serve
    the module is left out (its config removed, a warning logged).
    """
    owner = directory_owner(repo, triton_name)
    if owner is not None and owner != model_name:
        raise FailedPrecondition(
            f"Triton model {triton_name!r} belongs to model {owner!r}; give spec.triton_model_name another name"
        )
    model_dir = repo / triton_name
    model_dir.mkdir(parents=True, exist_ok=True)
    _write_text_atomically(model_dir / OWNER_FILE, model_name + "\n")
    staging = repo / f".staging-{triton_name}-{version}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        shutil.copyfile(torchscript, staging / "model.pt")
        (staging / "model.py").write_text(backend_source(), encoding="utf-8")
        refused = _write_native(staging, staging / "model.pt", n_inputs, output_widths)
        if variant in refused:
            raise FailedPrecondition(f"{triton_name} v{version} cannot be served by {variant}: {refused[variant]}")
        for skipped, why in refused.items():
            log.warning(
                "Triton variant not written",
                extra={"triton.model": triton_name, "variant": skipped, "reason": str(why)},
            )
        target = model_dir / str(version)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_configs(model_dir, refused, n_inputs, output_widths, gpu_instances)
    _write_text_atomically(
        model_dir / "config.pbtxt", model_config(variant, n_inputs, output_widths, gpu_instances=gpu_instances)
    )
    return target / "model.pt"
