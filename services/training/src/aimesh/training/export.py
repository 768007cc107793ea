"""Export a trained version into the Triton model repository.

Layout: ``<repo>/<triton_name>/config.pbtxt`` and ``<repo>/<triton_name>/<version>/{model.pt, model.py}``.
The version directory is staged beside the model directory and renamed into place, so Triton never
sees half a version; re-exporting the same version replaces it (idempotent).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from aimesh.core.errors import FailedPrecondition

MAX_BATCH_SIZE = 256
KEPT_VERSIONS = 2
"""Triton serves the newest two versions of a model, so champion and a challenger can be loaded together."""


OWNER_FILE = "aimesh-model.txt"
"""Written into each exported Triton model directory: the registered model it belongs to."""


def model_config(n_inputs: int, output_widths: Sequence[int] = (1,)) -> str:
    """``config.pbtxt`` for a python-backend model: ``INPUT__0`` FP32 ``[n_inputs]`` -> ``OUTPUT__j`` FP32
    ``[output_widths[j]]`` for each output (the model name is the directory's)."""
    outputs = ",\n".join(
        f"""  {{
    name: "OUTPUT__{j}"
    data_type: TYPE_FP32
    dims: [ {width} ]
  }}"""
        for j, width in enumerate(output_widths)
    )
    return f"""# Written by aimesh training. The model name is the directory name.
backend: "python"
max_batch_size: {MAX_BATCH_SIZE}
dynamic_batching {{ max_queue_delay_microseconds: 500 }}
instance_group [{{ kind: KIND_CPU, count: 1 }}]
version_policy: {{ latest: {{ num_versions: {KEPT_VERSIONS} }} }}
input [
  {{
    name: "INPUT__0"
    data_type: TYPE_FP32
    dims: [ {n_inputs} ]
  }}
]
output [
{outputs}
]
"""


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


def export_version(
    repo: Path,
    triton_name: str,
    version: int,
    torchscript: Path,
    *,
    model_name: str,
    n_inputs: int,
    output_widths: Sequence[int],
) -> Path:
    """Copy ``torchscript`` into ``<repo>/<triton_name>/<version>/model.pt`` with the backend and config.

    Returns the exported ``model.pt``. Raises ``FailedPrecondition`` when the directory belongs to another
    registered model (its marker file names it), ``OSError`` when the repository is not writable.
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
        target = model_dir / str(version)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_text_atomically(model_dir / "config.pbtxt", model_config(n_inputs, output_widths))
    return target / "model.pt"
