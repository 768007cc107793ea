"""Unprivileged system users and file ownership for the servers that refuse to run as root."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from aimesh.devstack.errors import DevstackError


def ensure_system_user(component: str, user: str, *, home: str = "/nonexistent") -> pwd.struct_passwd:
    """Return ``user``'s passwd entry, creating it as a system user (no login, own group) when missing.

    Raises DevstackError when it is missing and cannot be created (not root, no ``useradd``).
    """
    try:
        return pwd.getpwnam(user)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if os.geteuid() != 0 or useradd is None:
        raise DevstackError(
            component,
            f"system user {user!r} does not exist and cannot be created here (needs root and useradd)",
            f"as root: useradd --system --user-group --no-create-home --home-dir {home} "
            f"--shell /usr/sbin/nologin {user}",
        )
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            home,
            "--shell",
            "/usr/sbin/nologin",
            user,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DevstackError(
            component, f"useradd {user} failed: {result.stderr.strip()}", "create the user by hand, then rerun"
        )
    return pwd.getpwnam(user)


def chown_tree(path: Path, user: str) -> None:
    """Give ``path`` and everything below it to ``user`` (and its primary group). Skips what it already owns."""
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in (root, *(os.path.join(root, n) for n in (*dirs, *files))):
            st = os.lstat(name)
            if st.st_uid != pw.pw_uid or st.st_gid != pw.pw_gid:
                os.lchown(name, pw.pw_uid, pw.pw_gid)


def grant_traverse(path: Path) -> list[Path]:
    """Add ``o+x`` to every ancestor of ``path`` that lacks it, so another user can reach ``path``.

    Only the search bit is added (no read: directory listings stay private). Returns the directories
    changed, for the caller to report.
    """
    changed: list[Path] = []
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(parent)
    return changed
