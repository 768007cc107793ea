"""The one error type of the devstack: every failure names its cause and the fix."""

from __future__ import annotations


class DevstackError(RuntimeError):
    """A start, download or check failed. ``cause`` says what went wrong, ``fix`` what to do."""

    def __init__(self, component: str, cause: str, fix: str) -> None:
        super().__init__(f"{component}: {cause}. Fix: {fix}")
        self.component = component
        self.cause = cause
        self.fix = fix
