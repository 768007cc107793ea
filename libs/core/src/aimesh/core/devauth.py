"""A local token issuer for the dev stack and the tests (never used by a service at run time).

``DevAuthority.create(directory)`` keeps, in ``directory``:

- ``signing-key.pem``: an Ed25519 private key (mode 0600), made once and reused on later calls;
- ``jwks.json``: its public key as a JWKS (``kid`` = the key's thumbprint), what servers verify with
  (``auth_jwks_file``);
- ``policy.yaml``: the tenants and their grants (``auth_policy_file``), rewritten on every call;
- ``<name>.token``: tokens written by ``write_token`` (what clients send, ``AIMESH_AUTH_TOKEN_FILE``).

Each file is replaced atomically (written to a temporary file in ``directory``, then renamed over the
old one): the dev stack rewrites them on every service start while the other services read them, and a
reader must never see an empty or half-written file.

The default policy has two tenants: ``demo`` may do everything, ``platform`` (the services' own calls
to each other) may read feature services and feature views.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEMO_TENANT = "demo"
PLATFORM_TENANT = "platform"
AUDIENCE = "aimesh"
ISSUER = "aimesh-dev"
Grants = Sequence[Mapping[str, Sequence[str]]]
DEFAULT_TENANTS: dict[str, Grants] = {
    DEMO_TENANT: [{"actions": ["*"], "resources": ["*"]}],
    PLATFORM_TENANT: [{"actions": ["feature_service.read", "feature_view.read"], "resources": ["*"]}],
}


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``) so that a reader sees the old or the new content,
    never a mix: written and flushed to a temporary file in the same directory, then renamed over it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@dataclass(frozen=True)
class DevAuthority:
    """The files of a local issuer (see the module doc) and the means to mint its tokens."""

    directory: Path
    key: Ed25519PrivateKey
    kid: str

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        tenants: Mapping[str, Grants] | None = None,
        identities: Mapping[str, str] | None = None,
    ) -> DevAuthority:
        """Make (or reuse) the key, write the JWKS and the policy (``tenants``, default ``DEFAULT_TENANTS``)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / "signing-key.pem"
        if key_file.exists():
            loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError(f"{key_file} is not an Ed25519 key")
            key = loaded
        else:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_atomically(key_file, pem, mode=0o600)
        public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
        kid = jwt.utils.base64url_encode(
            hashlib.sha256(json.dumps(public, sort_keys=True).encode()).digest()[:12]
        ).decode()
        public.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
        write_atomically(directory / "jwks.json", (json.dumps({"keys": [public]}, indent=2) + "\n").encode())
        policy: dict[str, Any] = {
            "tenants": {
                name: {"allow": [dict(g) for g in grants]} for name, grants in (tenants or DEFAULT_TENANTS).items()
            },
            "identities": dict(identities or {}),
        }
        write_atomically(directory / "policy.yaml", yaml.safe_dump(policy, sort_keys=False).encode())
        return cls(directory, key, kid)

    @property
    def jwks_file(self) -> Path:
        return self.directory / "jwks.json"

    @property
    def policy_file(self) -> Path:
        return self.directory / "policy.yaml"

    def mint(
        self,
        subject: str,
        *,
        tenant: str | None,
        ttl_seconds: float = 3600.0,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        not_before: float | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> str:
        """A signed EdDSA token for ``subject`` (``tenant`` claim unless None), valid ``ttl_seconds``
        from now (negative: already expired). ``key`` signs instead of the issuer's own (bad signatures)."""
        now = time.time()
        claims: dict[str, Any] = {"sub": subject, "aud": audience, "iss": issuer, "iat": int(now)}
        claims["exp"] = int(now + ttl_seconds)
        if tenant is not None:
            claims["tenant"] = tenant
        if not_before is not None:
            claims["nbf"] = int(not_before)
        return jwt.encode(claims, key or self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def write_token(self, name: str, subject: str, *, tenant: str, ttl_seconds: float = 3600.0) -> Path:
        """``mint`` into ``<directory>/<name>.token`` (mode 0600); returns its path."""
        path = self.directory / f"{name}.token"
        write_atomically(path, (self.mint(subject, tenant=tenant, ttl_seconds=ttl_seconds) + "\n").encode(), mode=0o600)
        return path

    def server_settings(self) -> dict[str, Any]:
        """The ``ServiceSettings`` keyword arguments that turn auth on with this issuer's files."""
        return {
            "auth_enabled": True,
            "auth_jwks_file": self.jwks_file,
            "auth_policy_file": self.policy_file,
            "auth_audience": AUDIENCE,
            "auth_issuer": ISSUER,
        }

    def environment(self, token_file: Path | None = None) -> dict[str, str]:
        """The ``AIMESH_AUTH_*`` variables of a process that serves (and, with ``token_file``, calls) with it."""
        env = {
            "AIMESH_AUTH_ENABLED": "true",
            "AIMESH_AUTH_JWKS_FILE": str(self.jwks_file),
            "AIMESH_AUTH_POLICY_FILE": str(self.policy_file),
            "AIMESH_AUTH_AUDIENCE": AUDIENCE,
            "AIMESH_AUTH_ISSUER": ISSUER,
        }
        if token_file is not None:
            env["AIMESH_AUTH_TOKEN_FILE"] = str(token_file)
        return env
