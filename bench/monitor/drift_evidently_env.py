"""Evidently in its own virtualenv (``.aimesh/tools/evidently-venv``), never in the project's ``.venv``.

``python -m bench.monitor.drift_evidently_env`` (``make bench-monitor-tools``) creates it with the
harness's Python minor version and every package pinned by ``drift-evidently-requirements.txt``
(evidently 0.7.x needs pandas < 3, which the project's environment does not constrain). Later calls reuse
it while its stamp file holds that requirements file's SHA-256; pip's download cache makes a re-create fast.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from aimesh.devstack.paths import Paths

REQUIREMENTS = Path(__file__).resolve().parent / "drift-evidently-requirements.txt"


class EvidentlyEnvError(RuntimeError):
    """The virtualenv could not be created or Evidently not installed; the message quotes pip's output."""


def venv_dir() -> Path:
    return Paths.default().home / "tools" / "evidently-venv"


def pinned(package: str) -> str:
    """The version ``drift-evidently-requirements.txt`` pins for ``package`` ("" when it pins none)."""
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package.lower():
            return version.strip()
    return ""


def evidently_python() -> Path:
    """The interpreter of the Evidently virtualenv, created (blocking, a minute or two the first time) when
    missing or made from another requirements file.

    Raises ``EvidentlyEnvError`` with pip's last output lines when the install fails.
    """
    root = venv_dir()
    python, stamp = root / "bin" / "python", root / ".requirements-sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    base = f"python{sys.version_info.major}.{sys.version_info.minor}"
    _run([shutil.which(base) or base, "-m", "venv", str(root)])
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)])
    stamp.write_text(digest + "\n")
    return python


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise EvidentlyEnvError(f"{' '.join(command)} exited with {done.returncode}:\n{tail}")


if __name__ == "__main__":
    print(evidently_python())
