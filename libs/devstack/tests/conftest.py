"""Unit-test fixtures for the devstack: a throwaway state directory, no network, no servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimesh.devstack.paths import Paths, repo_root


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """State under ``tmp_path``; templates from the real repository's deploy/local."""
    p = Paths(home=tmp_path / "home", repo=repo_root())
    p.ensure()
    return p
