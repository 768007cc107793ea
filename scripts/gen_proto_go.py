"""Generate the Go code of the wire contracts: ``proto/`` -> ``tests/clients/go/gen``.

Run as ``make proto-go`` (``python scripts/gen_proto_go.py``). For every ``proto/aimesh/api/**/*.proto``
it writes ``*.pb.go`` (``protoc-gen-go``) and, for protos with services, ``*_grpc.pb.go``
(``protoc-gen-go-grpc``) at the path its ``go_package`` names inside the Go module
``tests/clients/go`` (``gen/aimesh/api/<area>/v1/``). protoc is grpcio-tools' bundled one (as for the
Python code); the two plugins are the versions pinned as ``tool`` lines in ``tests/clients/go/go.mod``
(with ``go.sum``), installed into ``.aimesh/go/bin`` by :func:`install_plugins` (``go install tool``:
a no-op when they are current; the first time it needs the Go module proxy, or a module cache that
``make setup`` filled).

Output is deterministic: the inputs are sorted and everything is generated in one protoc run into a
scratch directory, then synchronised into the target, where ``*.pb.go`` files whose ``.proto`` no
longer exists are removed. ``tests/contract/test_go_generated_code_fresh.py`` uses :func:`generate`
to check that the committed tree is current.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("aimesh") / "api"
GO_MODULE_DIR = ROOT / "tests" / "clients" / "go"
GO_MODULE = "github.com/aimesh/aimesh/tests/clients/go"
GEN_DIR = Path("gen")
"""Generated code, relative to GO_MODULE_DIR (every go_package is ``GO_MODULE/gen/...``)."""
PLUGIN_BIN = ROOT / ".aimesh" / "go" / "bin"
PLUGINS = ("protoc-gen-go", "protoc-gen-go-grpc")
DEFAULT_GO = Path("/usr/local/go/bin/go")


class GenerationError(RuntimeError):
    """protoc failed, or Go or a plugin is missing or failed to install."""


def go_executable() -> Path:
    """The ``go`` command: ``$GO``, else ``go`` on PATH, else /usr/local/go/bin/go.

    Raises GenerationError naming all three when none is an executable file.
    """
    candidates = [os.environ.get("GO"), shutil.which("go"), str(DEFAULT_GO)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise GenerationError(
        f"Go not found ($GO, go on PATH, {DEFAULT_GO}): install Go 1.26+ from https://go.dev/dl/ "
        "(tests/clients/go/go.mod names the version)"
    )


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """All contract ``.proto`` files under ``proto_root/aimesh/api``, sorted, relative to ``proto_root``."""
    return sorted(p.relative_to(proto_root) for p in (proto_root / PACKAGE_DIR).rglob("*.proto"))


def install_plugins(bin_dir: Path = PLUGIN_BIN, timeout_s: float = 600) -> dict[str, Path]:
    """Install the pinned ``protoc-gen-go`` and ``protoc-gen-go-grpc`` into ``bin_dir``; return their paths.

    Runs ``go install tool`` in the Go module (the versions of its go.mod ``tool`` lines, checked
    against go.sum). Raises GenerationError with Go's output when the install fails.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [str(go_executable()), "install", "tool"],
        cwd=GO_MODULE_DIR,
        env={**os.environ, "GOBIN": str(bin_dir), "GOFLAGS": "-mod=readonly"},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    plugins = {name: bin_dir / name for name in PLUGINS}
    if result.returncode != 0 or not all(p.is_file() for p in plugins.values()):
        raise GenerationError(f"go install tool failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return plugins


def generate(out_root: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Generate the full ``gen/aimesh/api`` tree into ``out_root`` (which should be empty or absent).

    Returns the generated files, relative to ``out_root``, sorted (``gen/aimesh/api/<area>/v1/*.go``).
    Installs the plugins first (:func:`install_plugins`). Raises GenerationError when protoc fails.
    """
    from grpc_tools import protoc  # type: ignore[import-untyped]  # dev-time only

    inputs = proto_files(proto_root)
    if not inputs:
        raise GenerationError(f"no .proto files under {proto_root / PACKAGE_DIR}")
    plugins = install_plugins()
    out_root.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        *(f"--plugin={name}={path}" for name, path in plugins.items()),
        f"--go_out={out_root}",
        f"--go_opt=module={GO_MODULE}",
        f"--go-grpc_out={out_root}",
        f"--go-grpc_opt=module={GO_MODULE}",
        *(str(proto_root / p) for p in inputs),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise GenerationError(f"protoc failed with exit code {rc}")
    return sorted(p.relative_to(out_root) for p in out_root.rglob("*") if p.is_file())


def sync(generated_root: Path, target_root: Path) -> tuple[list[Path], list[Path]]:
    """Make ``target_root/gen`` match ``generated_root/gen``.

    Copies new or changed files; removes ``*.pb.go`` files that were not regenerated, then empty
    directories. Returns (written, removed), relative to ``target_root``.
    """
    written: list[Path] = []
    removed: list[Path] = []
    fresh = {p.relative_to(generated_root) for p in (generated_root / GEN_DIR).rglob("*") if p.is_file()}
    for rel in sorted(fresh):
        src, dst = generated_root / rel, target_root / rel
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(rel)
    target_gen = target_root / GEN_DIR
    if target_gen.exists():
        for path in sorted(target_gen.rglob("*.pb.go")):
            rel = path.relative_to(target_root)
            if rel not in fresh:
                path.unlink()
                removed.append(rel)
        for directory in sorted((d for d in target_gen.rglob("*") if d.is_dir()), reverse=True):
            if not any(directory.iterdir()):
                directory.rmdir()
    return written, removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=GO_MODULE_DIR, help="Go module root (default: tests/clients/go)")
    parser.add_argument("--proto", type=Path, default=PROTO_ROOT, help="proto root (default: proto)")
    parser.add_argument(
        "--plugins-only", action="store_true", help="only install the pinned protoc plugins (make setup)"
    )
    args = parser.parse_args(argv)
    try:
        if args.plugins_only:
            for path in install_plugins().values():
                print(f"installed {path}")
            return 0
        with tempfile.TemporaryDirectory(prefix="aimesh-proto-go-") as tmp:
            generate(Path(tmp), args.proto.resolve())
            written, removed = sync(Path(tmp), args.out.resolve())
    except GenerationError as exc:
        print(f"gen_proto_go: {exc}", file=sys.stderr)
        return 1
    for rel in written:
        print(f"wrote   {rel}")
    for rel in removed:
        print(f"removed {rel}")
    print(
        f"gen_proto_go: {len(proto_files(args.proto.resolve()))} protos, {len(written)} written, {len(removed)} removed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
