"""Drive the Java bank client (tests/clients/java) from Python tests.

``build_java_client()`` builds the runnable jar with Maven unless it is newer than every input;
``run_java_client()`` pipes payments to it and returns its output lines. Both block (use
``asyncio.to_thread`` when the server under test runs on the caller's event loop).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aimesh.core.channels import TOKEN_FILE_ENV

PROJECT = Path(__file__).resolve().parent / "java"
JAR = PROJECT / "target" / "aimesh-bank-client.jar"
PROTO_ROOT = PROJECT.parents[2] / "proto"
PROTO_DIRS = ("aimesh/api/common/v1", "aimesh/api/inference/v1")
"""The proto packages the pom compiles (its <includes>)."""


class JavaClientUnavailable(RuntimeError):
    """The JDK or Maven is missing, or the Maven build failed; the message says which and how to fix it."""


def _inputs() -> list[Path]:
    sources = [PROJECT / "pom.xml", *(PROJECT / "src").rglob("*")]
    protos = [p for d in PROTO_DIRS for p in (PROTO_ROOT / d).glob("*.proto")]
    return [p for p in [*sources, *protos] if p.is_file()]


def _up_to_date() -> bool:
    return JAR.is_file() and JAR.stat().st_mtime >= max(p.stat().st_mtime for p in _inputs())


def build_java_client(timeout_s: float = 600) -> Path:
    """Return the runnable jar, running ``mvn -q -B package`` first unless it is up to date.

    Blocks for the build (seconds when Maven's local repository is warm, longer on the first run
    as it downloads grpc-java, protobuf and protoc). Concurrent callers (parallel test sessions)
    serialise on a lock file in ``target/``. Raises ``JavaClientUnavailable`` when ``java`` or ``mvn``
    is not on PATH or the build fails (with Maven's output).
    """
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        raise JavaClientUnavailable(
            f"{' and '.join(missing)} not found on PATH: the Java bank client needs a JDK 17+ and Maven 3.8+ "
            "(Debian: apt-get install openjdk-17-jdk-headless maven)"
        )
    JAR.parent.mkdir(parents=True, exist_ok=True)
    with (JAR.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _up_to_date():
            result = subprocess.run(
                ["mvn", "-q", "-B", "package", "-f", str(PROJECT / "pom.xml")],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            if result.returncode != 0 or not JAR.is_file():
                raise JavaClientUnavailable(
                    f"mvn package failed (exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
                )
    return JAR


def run_java_client(
    jar: Path,
    target: str,
    requests: Iterable[Mapping[str, Any]],
    deadline_ms: int = 2000,
    timeout_s: float = 60,
) -> list[dict[str, Any]]:
    """Pipe ``requests`` (payments, one JSON line each) to the client and return its output lines.

    The client sends the bearer token of ``$AIMESH_AUTH_TOKEN_FILE`` when that is set (as the Python
    clients do). Blocks until the client has answered every payment and exited. Output lines come in input
    order, one per payment (format: ScoreResults.java). Raises ``subprocess.CalledProcessError`` when
    the client exits non-zero and ``subprocess.TimeoutExpired`` after ``timeout_s``.
    """
    stdin = "".join(json.dumps(dict(r)) + "\n" for r in requests)
    token_file = os.environ.get(TOKEN_FILE_ENV)
    result = subprocess.run(
        [
            "java",
            "-jar",
            str(jar),
            "--target",
            target,
            "--deadline-ms",
            str(deadline_ms),
            *(["--token-file", token_file] if token_file else []),
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
