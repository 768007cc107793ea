"""The committed generated code in libs/api/src matches what proto/ generates now.

Fails when someone edits a .proto without running ``make proto`` (or hand-edits generated code).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "libs" / "api" / "src"


def _load_gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_proto", module)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(root): p.read_bytes()
        for p in (root / "aimesh").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def gen_proto() -> ModuleType:
    return _load_gen_proto()


def test_generated_code_is_fresh(gen_proto: ModuleType, tmp_path: Path) -> None:
    gen_proto.generate(tmp_path)
    fresh, committed = _tree(tmp_path), _tree(COMMITTED)
    missing = sorted(str(p) for p in fresh.keys() - committed.keys())
    extra = sorted(str(p) for p in committed.keys() - fresh.keys())
    changed = sorted(str(p) for p in fresh.keys() & committed.keys() if fresh[p] != committed[p])
    problems = [
        f"{label}: {', '.join(paths)}"
        for label, paths in (("missing", missing), ("not generated from any proto", extra), ("changed", changed))
        if paths
    ]
    assert not problems, (
        "libs/api/src is stale relative to proto/ -- run `make proto` and commit the result.\n" + "\n".join(problems)
    )


def test_namespace_package_has_no_init() -> None:
    assert not (COMMITTED / "aimesh" / "__init__.py").exists(), "aimesh must stay an implicit namespace package"


def test_generation_is_deterministic(gen_proto: ModuleType, tmp_path: Path) -> None:
    gen_proto.generate(tmp_path / "a")
    gen_proto.generate(tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_sync_removes_files_of_deleted_protos(gen_proto: ModuleType, tmp_path: Path) -> None:
    generated, target = tmp_path / "gen", tmp_path / "target"
    gen_proto.generate(generated)
    orphan_dir = target / "aimesh" / "api" / "gone" / "v1"
    orphan_dir.mkdir(parents=True)
    (orphan_dir / "__init__.py").write_text("")
    (orphan_dir / "gone_pb2.py").write_text("# stale\n")
    (orphan_dir / "gone_pb2.pyi").write_text("# stale\n")
    written, removed = gen_proto.sync(generated, target)
    assert _tree(target) == _tree(generated)
    assert Path("aimesh/api/gone/v1/gone_pb2.py") in removed
    assert not (target / "aimesh" / "api" / "gone").exists()
    assert written, "a fresh target gets every file written"
    assert gen_proto.sync(generated, target) == ([], [])
