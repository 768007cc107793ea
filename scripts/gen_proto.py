"""Generate the Python code of the wire contracts: ``proto/`` -> ``libs/api/src``.

Run as ``make proto`` (``python scripts/gen_proto.py``). For every ``proto/aimesh/api/**/*.proto`` it
writes ``*_pb2.py`` and ``*_pb2.pyi`` (protoc's own stubs), ``*_pb2_grpc.py`` (grpcio-tools) and
``*_pb2_grpc.pyi`` (mypy-protobuf's ``protoc-gen-mypy_grpc``, so strict mypy can check service code),
plus empty ``__init__.py`` files in every package below ``aimesh/api`` and a ``py.typed`` marker.
``aimesh`` itself stays an implicit namespace package (no ``__init__.py``).

Output is deterministic: the inputs are sorted and everything is generated in one protoc run into a
scratch directory, then synchronised into the target, where generated files whose ``.proto`` no longer
exists are removed. ``tests/contract/test_generated_code_fresh.py`` uses :func:`generate` to check
that the committed tree is current.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "libs" / "api" / "src"
PACKAGE_DIR = Path("aimesh") / "api"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
MARKER_NAMES = ("__init__.py", "py.typed")


class GenerationError(RuntimeError):
    """protoc failed or a required tool is missing."""


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """All contract ``.proto`` files under ``proto_root/aimesh/api``, sorted, relative to ``proto_root``."""
    return sorted(p.relative_to(proto_root) for p in (proto_root / PACKAGE_DIR).rglob("*.proto"))


def _mypy_grpc_plugin() -> Path:
    """The ``protoc-gen-mypy_grpc`` executable installed next to the running interpreter."""
    candidate = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    if candidate.is_file():
        return candidate
    found = shutil.which("protoc-gen-mypy_grpc")
    if found is None:
        raise GenerationError("protoc-gen-mypy_grpc not found: install mypy-protobuf in this environment")
    return Path(found)


def _is_generated(path: Path) -> bool:
    return path.name in MARKER_NAMES or path.name.endswith(GENERATED_SUFFIXES)


def generate(out_root: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Generate the full ``aimesh/api`` tree into ``out_root`` (which should be empty or absent).

    Returns the generated files, relative to ``out_root``, sorted. Raises GenerationError when protoc
    fails. Runs protoc in-process (``grpc_tools.protoc``); nothing else is touched.
    """
    from grpc_tools import protoc  # type: ignore[import-untyped]  # dev-time only

    inputs = proto_files(proto_root)
    if not inputs:
        raise GenerationError(f"no .proto files under {proto_root / PACKAGE_DIR}")
    out_root.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy_grpc={_mypy_grpc_plugin()}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_grpc_out=quiet:{out_root}",
        *(str(proto_root / p) for p in inputs),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise GenerationError(f"protoc failed with exit code {rc}")

    package_root = out_root / PACKAGE_DIR
    (package_root / "py.typed").write_text("")
    for directory in sorted({package_root, *(p.parent for p in package_root.rglob("*_pb2.py"))}):
        current = directory
        while current != out_root / PACKAGE_DIR.parent:
            init = current / "__init__.py"
            if not init.exists():
                init.write_text("")
            current = current.parent
    return sorted(p.relative_to(out_root) for p in out_root.rglob("*") if p.is_file())


def sync(generated_root: Path, target_root: Path) -> tuple[list[Path], list[Path]]:
    """Make ``target_root/aimesh/api`` match ``generated_root/aimesh/api``.

    Copies new or changed files; removes generated-looking files (``*_pb2*.py[i]``, ``__init__.py``,
    ``py.typed``) that were not regenerated, then empty directories. Returns (written, removed),
    relative to ``target_root``.
    """
    written: list[Path] = []
    removed: list[Path] = []
    fresh = {p.relative_to(generated_root) for p in (generated_root / PACKAGE_DIR).rglob("*") if p.is_file()}
    for rel in sorted(fresh):
        src, dst = generated_root / rel, target_root / rel
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(rel)
    target_pkg = target_root / PACKAGE_DIR
    if target_pkg.exists():
        for path in sorted(target_pkg.rglob("*")):
            rel = path.relative_to(target_root)
            if path.is_file() and _is_generated(path) and "__pycache__" not in path.parts and rel not in fresh:
                path.unlink()
                removed.append(rel)
        for directory in sorted((d for d in target_pkg.rglob("*") if d.is_dir()), reverse=True):
            if directory.name != "__pycache__" and all(c.name == "__pycache__" for c in directory.iterdir()):
                shutil.rmtree(directory)  # holds no sources any more, at most stale bytecode
    return written, removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT_ROOT, help="output root (default: libs/api/src)")
    parser.add_argument("--proto", type=Path, default=PROTO_ROOT, help="proto root (default: proto)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="aimesh-proto-") as tmp:
            generate(Path(tmp), args.proto.resolve())
            written, removed = sync(Path(tmp), args.out.resolve())
    except GenerationError as exc:
        print(f"gen_proto: {exc}", file=sys.stderr)
        return 1
    for rel in written:
        print(f"wrote   {rel}")
    for rel in removed:
        print(f"removed {rel}")
    print(f"gen_proto: {len(proto_files(args.proto.resolve()))} protos, {len(written)} written, {len(removed)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
