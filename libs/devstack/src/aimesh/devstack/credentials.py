"""The dev stack's credentials: auth is on in the local stack unless ``AIMESH_AUTH_ENABLED`` says false.

``ensure(paths)`` keeps, under ``<home>/auth`` (``aimesh.core.devauth``): an Ed25519 signing key, its
``jwks.json``, ``policy.yaml`` (tenant ``demo``: every permission; tenant ``platform``: read feature
services and views), ``demo.token`` (subject ``demo-user``, tenant ``demo``: what the CLI commands,
the examples and the tests send) and ``services.token`` (subject ``aimesh-services``, tenant
``platform``: what a service sends to another). Both tokens are valid ``TOKEN_TTL_SECONDS`` and
re-minted on every call (every service start).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aimesh.core.channels import TOKEN_FILE_ENV
from aimesh.core.devauth import DEMO_TENANT, PLATFORM_TENANT, DevAuthority
from aimesh.devstack.paths import Paths

TOKEN_TTL_SECONDS = 30 * 24 * 3600.0


@dataclass(frozen=True)
class DevCredentials:
    authority: DevAuthority
    demo_token: Path
    services_token: Path

    def service_environment(self) -> dict[str, str]:
        """``AIMESH_AUTH_*`` of a service process: verify with the stack's keys, call with ``services.token``."""
        return self.authority.environment(token_file=self.services_token)


def auth_enabled() -> bool:
    """False only when ``AIMESH_AUTH_ENABLED`` is set to a false value (0, false, no, off)."""
    return os.environ.get("AIMESH_AUTH_ENABLED", "true").strip().lower() not in {"0", "false", "no", "off"}


def auth_directory(paths: Paths) -> Path:
    return paths.home / "auth"


def ensure(paths: Paths) -> DevCredentials:
    """Create or refresh the stack's credentials (see the module doc)."""
    authority = DevAuthority.create(auth_directory(paths))
    demo = authority.write_token("demo", "demo-user", tenant=DEMO_TENANT, ttl_seconds=TOKEN_TTL_SECONDS)
    services = authority.write_token(
        "services", "aimesh-services", tenant=PLATFORM_TENANT, ttl_seconds=TOKEN_TTL_SECONDS
    )
    return DevCredentials(authority, demo, services)


def use_demo_token(paths: Paths) -> None:
    """Point ``$AIMESH_AUTH_TOKEN_FILE`` at the stack's ``demo.token`` when it is unset and the file exists
    (so the CLI's gRPC commands authenticate against the local stack without setup)."""
    demo = auth_directory(paths) / "demo.token"
    if not os.environ.get(TOKEN_FILE_ENV) and demo.is_file():
        os.environ[TOKEN_FILE_ENV] = str(demo)
