"""The committed Go code in tests/clients/go/gen matches what proto/ generates now.

Fails when someone edits a .proto without running ``make proto-go`` (or hand-edits generated code).
Needs Go (``make setup`` checks for it and installs the pinned protoc plugins); a missing toolchain
fails the test with how to install it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_gen_proto_go() -> ModuleType:
    name = "gen_proto_go"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "gen_proto_go.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _tree(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in (root / "gen").rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return _load_gen_proto_go()


def test_go_generated_code_is_fresh(gen: ModuleType, tmp_path: Path) -> None:
    try:
        gen.generate(tmp_path)
    except gen.GenerationError as exc:
        pytest.fail(str(exc), pytrace=False)
    fresh, committed = _tree(tmp_path), _tree(gen.GO_MODULE_DIR)
    missing = sorted(str(p) for p in fresh.keys() - committed.keys())
    extra = sorted(str(p) for p in committed.keys() - fresh.keys())
    changed = sorted(str(p) for p in fresh.keys() & committed.keys() if fresh[p] != committed[p])
    problems = [
        f"{label}: {', '.join(paths)}"
        for label, paths in (("missing", missing), ("not generated from any proto", extra), ("changed", changed))
        if paths
    ]
    assert not problems, (
        "tests/clients/go/gen is stale relative to proto/ -- run `make proto-go` and commit the result.\n"
        + "\n".join(problems)
    )


def test_every_proto_has_a_go_package_inside_the_module(gen: ModuleType) -> None:
    """protoc-gen-go needs a go_package; under GO_MODULE/gen the generated tree mirrors proto/."""
    for rel in gen.proto_files():
        text = (gen.PROTO_ROOT / rel).read_text()
        expected = f'option go_package = "{gen.GO_MODULE}/gen/{rel.parent.as_posix()};'
        assert expected in text, f"{rel}: expected a line starting {expected}"


def test_sync_removes_files_of_deleted_protos(gen: ModuleType, tmp_path: Path) -> None:
    generated, target = tmp_path / "gen-out", tmp_path / "module"
    gen.generate(generated)
    orphan = target / "gen" / "aimesh" / "api" / "gone" / "v1" / "gone.pb.go"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("// stale\n")
    written, removed = gen.sync(generated, target)
    assert _tree(target) == _tree(generated)
    assert Path("gen/aimesh/api/gone/v1/gone.pb.go") in removed
    assert not (target / "gen" / "aimesh" / "api" / "gone").exists()
    assert written, "a fresh target gets every file written"
    assert gen.sync(generated, target) == ([], [])
