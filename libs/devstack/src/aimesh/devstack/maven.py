"""Run the Maven builds under deploy/local that fetch the JVM distributions from Maven Central."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from aimesh.devstack.errors import DevstackError

_TRANSFER = re.compile(r"^(?:\[INFO\] )?(Downloading|Downloaded) from \S+: (\S+)")
_ERROR_TAIL = 40


def find_mvn(component: str) -> str:
    """Path of ``mvn``; raises DevstackError with the install command when it is missing."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevstackError(
            component, "`mvn` (Apache Maven) is not on PATH", "apt-get install -y maven (or put mvn on PATH)"
        )
    return mvn


def run_pom(
    component: str,
    pom: Path,
    *,
    properties: Mapping[str, str],
    logfile: Path,
    console: Console,
) -> None:
    """Run ``mvn -B -f pom package -D<properties>``; block until it ends.

    Progress: a rich status line shows the artifact being downloaded; each finished download is printed.
    The whole output is appended to ``logfile``. Raises DevstackError (Maven's own [ERROR] line as the
    cause) when Maven fails, e.g. without network access to Maven Central.
    """
    cmd = [find_mvn(component), "-B", "-f", str(pom), "package", *(f"-D{k}={v}" for k, v in properties.items())]
    logfile.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=_ERROR_TAIL)
    downloads = 0
    with logfile.open("a") as log, console.status(f"[bold]{component}[/]: mvn package {pom}") as status:
        proc = subprocess.Popen(  # noqa: S603 - fixed command built above
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip())
            match = _TRANSFER.match(line)
            if match is None:
                continue
            artifact = match.group(2).rsplit("/", 1)[-1]
            if match.group(1) == "Downloading":
                status.update(f"[bold]{component}[/]: downloading {artifact}")
            else:
                downloads += 1
                console.print(f"  [dim]{component}: downloaded {artifact}[/]", highlight=False)
        code = proc.wait()
    if code != 0:
        errors = [line for line in tail if line.startswith("[ERROR]") and len(line) > len("[ERROR] ")]
        cause = errors[0] if errors else (tail[-1] if tail else "no output")
        raise DevstackError(
            component,
            f"mvn failed with exit code {code}: {cause}",
            f"check network access to Maven Central (repo1.maven.org) and read {logfile}; then `aimesh up` again",
        )
    console.print(f"  {component}: Maven done ({downloads} artifact(s) downloaded, the rest from ~/.m2)")
