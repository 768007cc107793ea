"""Find a JDK of at least a given major version on the machine (no download: JDKs come from the OS)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from aimesh.devstack.errors import DevstackError

JVM_ROOT = Path("/usr/lib/jvm")
_RELEASE_VERSION = re.compile(r'^JAVA_VERSION="([^"]+)"', re.MULTILINE)
_VERSION_OUTPUT = re.compile(r'version "([^"]+)"')


def major_version(version: str) -> int:
    """The feature release of a Java version string: ``17.0.15`` -> 17, ``1.8.0_402`` -> 8, ``25`` -> 25."""
    parts = version.split(".")
    if parts[0] == "1" and len(parts) > 1:
        return int(parts[1])
    return int(re.split(r"[^0-9]", parts[0], maxsplit=1)[0])


def java_version(home: Path) -> str | None:
    """The version of the JDK at ``home`` (from its ``release`` file, else ``bin/java -version``), or None."""
    try:
        match = _RELEASE_VERSION.search((home / "release").read_text())
        if match:
            return match.group(1)
    except OSError:
        pass
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run(  # noqa: S603 - a JDK's own launcher
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_OUTPUT.search(out.stderr + out.stdout)
    return match.group(1) if match else None


def _candidates(env_vars: Sequence[str], jvm_root: Path) -> Iterable[Path]:
    for var in env_vars:
        if os.environ.get(var):
            yield Path(os.environ[var])
    on_path = shutil.which("java")
    if on_path:
        yield Path(on_path).resolve().parent.parent
    if jvm_root.is_dir():
        yield from sorted(p for p in jvm_root.iterdir() if p.is_dir() and not p.is_symlink())


def find_java_home(
    component: str,
    min_major: int,
    *,
    env_vars: Sequence[str] = ("JAVA_HOME",),
    jvm_root: Path = JVM_ROOT,
) -> Path:
    """The first JDK home with ``major >= min_major``: ``env_vars`` in order, ``java`` on PATH, ``jvm_root/*``.

    Raises DevstackError naming what was checked and how to fix it when none qualifies.
    """
    seen: list[str] = []
    for home in _candidates(env_vars, jvm_root):
        version = java_version(home)
        if version is None:
            continue
        seen.append(f"{home} ({version})")
        if major_version(version) >= min_major:
            return home
    found = ", ".join(seen) or "none"
    raise DevstackError(
        component,
        f"no JDK {min_major}+ found (checked {', '.join(env_vars)}, java on PATH, {jvm_root}/*; found: {found})",
        f"install a JDK {min_major}+ (e.g. apt-get install -y openjdk-{max(min_major, 17)}-jdk-headless "
        f"or a Temurin JDK under {jvm_root}) or set {env_vars[0]} to one",
    )
