"""Feast in the benchmark's own virtualenv (``.aimesh/bench/feast-venv``), never in the project's ``.venv``.

Created once with the same Python minor version as the harness and ``feast[redis]==FEAST_VERSION``;
later runs reuse it when its stamp file names that version. pip's download cache makes a re-create fast.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from aimesh.devstack.paths import Paths

FEAST_VERSION = "0.67.0"
REQUIREMENT = f"feast[redis]=={FEAST_VERSION}"


class FeastEnvError(RuntimeError):
    """The virtualenv could not be created or Feast not installed; the message quotes pip's output."""


def venv_dir() -> Path:
    return Paths.default().home / "bench" / "feast-venv"


def feast_python() -> Path:
    """The interpreter of the Feast virtualenv, created (blocking, minutes the first time) when missing.

    Raises ``FeastEnvError`` with pip's last output lines when the install fails.
    """
    root = venv_dir()
    python, stamp = root / "bin" / "python", root / ".feast-version"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == REQUIREMENT:
        return python
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    base = f"python{sys.version_info.major}.{sys.version_info.minor}"
    _run([shutil.which(base) or base, "-m", "venv", str(root)])
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", REQUIREMENT])
    stamp.write_text(REQUIREMENT + "\n")
    return python


def feast_cli() -> Path:
    return feast_python().parent / "feast"


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise FeastEnvError(f"{' '.join(command)} exited with {done.returncode}:\n{tail}")
