"""Which ingest code is measured: the working tree (default), or a committed revision given by ``--code``.

The working tree is what ``python -m aimesh.ingest`` imports through the editable installs. A revision
is extracted with ``git archive`` (read-only on the repository) into a temporary directory and put on
the service's ``PYTHONPATH`` ahead of the editable installs, so ``aimesh.ingest`` and the libraries it
runs on (``aimesh.core``, ``aimesh.api``) come from that revision while others edit the tree.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from aimesh.devstack.paths import repo_root

SOURCE_ROOTS = ("services/ingest/src", "libs/core/src", "libs/api/src")


@dataclass(frozen=True, slots=True)
class IngestCode:
    """``pythonpath`` for the service process (None: the installed working tree) and a description."""

    pythonpath: str | None
    description: str


def working_tree() -> IngestCode:
    """The code the editable installs point at, described as git HEAD plus a note when it has local changes."""
    spec = importlib.util.find_spec("aimesh.ingest")
    origin = Path(spec.origin).parent if spec is not None and spec.origin else repo_root()
    head = _git(origin, "rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git(repo_root(), "status", "--porcelain", "--", *SOURCE_ROOTS[:2])
    note = " + uncommitted changes in services/ingest or libs/core" if dirty else ""
    return IngestCode(None, f"working tree at git {head}{note}")


def revision(rev: str, into: Path) -> IngestCode:
    """Extract ``rev``'s service and library sources under ``into``; raises ``ValueError`` for an unknown rev."""
    root = repo_root()
    commit = _git(root, "rev-parse", "--short", "--verify", f"{rev}^{{commit}}")
    if not commit:
        raise ValueError(f"not a git revision: {rev}")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, *SOURCE_ROOTS], cwd=root, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    paths = ":".join(str(into / source) for source in SOURCE_ROOTS)
    return IngestCode(paths, f"git {commit} (`--code {rev}`, extracted; the working tree's changes excluded)")


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""
