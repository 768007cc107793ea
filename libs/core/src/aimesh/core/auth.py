"""Who is calling and what they may do: bearer-token and mTLS authentication, tenants, per-tenant permissions.

Every gRPC call except ``grpc.health.v1`` and reflection goes through ``Authorizer.check`` (the core
server interceptor calls it; see ``aimesh.core.grpc_server``):

1. **Authentication.** An ``authorization: Bearer <JWT>`` metadata entry is verified by ``TokenVerifier``
   against the key set of a JWKS file (no network call; the file is re-read when it changes, and one
   that cannot be read or parsed, e.g. caught mid-rewrite, leaves the last key set in use): signature
   (RS256, ES256 or EdDSA, the algorithm fixed by the key), ``exp`` (required), ``nbf`` and ``iat`` when
   present, ``aud`` (required, must contain the configured audience), ``iss`` (when an issuer is
   configured), all with a small clock-skew leeway. The principal is the token's ``sub``; its tenant is
   the configured tenant claim (default ``tenant``), else the policy's ``identities`` entry for ``sub``.
   Without a token, a client certificate verified by the server's mTLS set-up stands for the caller:
   its identity is the first URI or DNS subject alternative name, else the subject CN, and its tenant
   is the policy's ``identities`` entry for it. No token and no certificate, or a token that does not
   verify: ``Unauthenticated`` naming why. A valid identity that maps to no tenant: ``PermissionDenied``.
2. **Authorisation.** The service gives a table ``method -> AccessRule``; a rule turns the decoded
   request into the (action, resource) pairs the call needs, e.g. ``("model.promote", "<model name>")``.
   Every pair must be granted to the caller's tenant by the ``Policy`` (a YAML file), else
   ``PermissionDenied`` ("tenant a may not model.promote 'm'"). A method with no rule is denied
   (fail closed). Resource ``ALL`` ("*") stands for every resource of the kind (list calls, calls whose
   resource is not in the request): only a grant whose resource pattern is ``*`` covers it.

Policy file::

    tenants:
      demo:
        allow:
          - actions: ["*"]            # fnmatch patterns over "<kind>.<verb>", e.g. "model.*"
            resources: ["*"]          # fnmatch patterns over resource names, e.g. "credit_*"
      scoring:
        allow:
          - actions: [model.score, model.read]
            resources: [credit_risk]
    identities:                       # token subject or certificate identity -> tenant
      spiffe://aimesh/inference: platform

The caller's principal is available to the handler (and to log records) through ``current_principal()``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jwt
import yaml

from aimesh.core.errors import PermissionDenied, Unauthenticated
from aimesh.core.settings import ServiceSettings

log = logging.getLogger(__name__)

ALL = "*"
"""The resource name of a call that concerns every resource of its kind (list calls)."""
ALGORITHMS = ("RS256", "ES256", "EdDSA")
"""Signature algorithms a token may use; ``none`` and HMAC are never accepted."""

_PRINCIPAL: ContextVar[Principal | None] = ContextVar("aimesh_principal", default=None)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: ``subject`` (token ``sub`` or certificate identity), its ``tenant``, and
    ``via`` ("jwt" or "mtls")."""

    subject: str
    tenant: str
    via: str


def current_principal() -> Principal | None:
    """The caller of the gRPC call being handled in this task; None outside calls or with auth disabled."""
    return _PRINCIPAL.get()


def current_tenant() -> str:
    """``current_principal().tenant``, or "" when there is none."""
    principal = _PRINCIPAL.get()
    return principal.tenant if principal is not None else ""


def bind_principal(principal: Principal | None) -> Any:
    """Make ``principal`` the current one in this context; returns the token ``reset_principal`` takes."""
    return _PRINCIPAL.set(principal)


def reset_principal(token: Any) -> None:
    _PRINCIPAL.reset(token)


class TokenVerifier:
    """Verifies JWT bearer tokens against a JWKS file (see the module doc). Thread-safe for reading.

    ``verify`` raises ``Unauthenticated`` with PyJWT's reason ("Signature has expired", "Audience
    doesn't match" ...) for any token that does not verify, names the ``kid`` it has no key for, and
    raises ``Unauthenticated`` when the token has no ``sub``.

    A token that verified is remembered (at most ``cache_size`` of them) until its ``exp`` plus the
    leeway, so a caller sending the same token on every call pays the signature check once (about
    0.2 ms here) instead of per call; a change of the JWKS file forgets them all (key rotation or
    removal takes effect at the next call). A changed file that cannot be read or parsed (caught
    mid-rewrite, half written) keeps the last key set in use, logged once per change, and is read again
    at the next call; a document with no keys rejects every token. At construction either raises.
    """

    def __init__(
        self,
        jwks_file: Path,
        *,
        audience: str,
        issuer: str | None = None,
        leeway_seconds: float = 30.0,
        tenant_claim: str = "tenant",
        cache_size: int = 4096,
    ) -> None:
        self.jwks_file = jwks_file
        self.audience = audience
        self.issuer = issuer
        self.leeway_seconds = leeway_seconds
        self.tenant_claim = tenant_claim
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._verified: dict[str, tuple[float, str, str | None]] = {}
        """token -> (valid until, subject, tenant) of tokens that verified under the current key set."""
        self._cache_size = cache_size
        self._unusable = False
        """The file changed into something unreadable (logged once until it is whole again)."""
        self._load()

    def _load(self) -> None:
        """Re-read the key set when the file changed (see the class doc for a file that cannot be read)."""
        try:
            stat = os.stat(self.jwks_file)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            document = json.loads(self.jwks_file.read_text(encoding="utf-8"))
            keys: dict[str | None, jwt.PyJWK] = {}
            for entry in document.get("keys", []):
                key = jwt.PyJWK.from_dict(entry)
                keys[key.key_id] = key
        except (OSError, ValueError, AttributeError, jwt.PyJWKError) as exc:
            if self._stamp is None:
                raise
            if not self._unusable:
                log.warning("the key set %s cannot be read (%r); keeping the last one", self.jwks_file, exc)
                self._unusable = True
            return
        if not keys and self._stamp is None:
            raise ValueError(f"{self.jwks_file} holds no usable key")
        self._keys, self._stamp, self._unusable = keys, stamp, False
        self._verified = {}

    def _key_for(self, kid: str | None) -> jwt.PyJWK:
        self._load()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(f"invalid bearer token: no key with kid {kid!r} in the trusted key set")
        return key

    def verify(self, token: str) -> tuple[str, str | None]:
        """The token's subject and tenant claim (None when it has none); raises ``Unauthenticated``."""
        self._load()
        known = self._verified.get(token)
        if known is not None and time.time() < known[0]:
            return known[1], known[2]
        subject, tenant, expires = self._verify_signed(token)
        if len(self._verified) >= self._cache_size:
            self._verified.clear()
        self._verified[token] = (expires + self.leeway_seconds, subject, tenant)
        return subject, tenant

    def _verify_signed(self, token: str) -> tuple[str, str | None, float]:
        try:
            header = jwt.get_unverified_header(token)
            key = self._key_for(header.get("kid"))
            algorithm = str(header.get("alg", ""))
            if algorithm not in ALGORITHMS or (key.algorithm_name and key.algorithm_name != algorithm):
                raise Unauthenticated(f"invalid bearer token: algorithm {algorithm!r} is not accepted for this key")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from exc
        tenant = claims.get(self.tenant_claim)
        return str(claims["sub"]), str(tenant) if tenant else None, float(claims["exp"])


@dataclass(frozen=True)
class Grant:
    """Actions (fnmatch patterns over "<kind>.<verb>") allowed on resources (patterns over names)."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def allows(self, action: str, resource: str) -> bool:
        if not any(fnmatchcase(action, pattern) for pattern in self.actions):
            return False
        if resource == ALL:
            return ALL in self.resources
        return any(fnmatchcase(resource, pattern) for pattern in self.resources)


@dataclass(frozen=True)
class Policy:
    """Per-tenant grants and the identity -> tenant map (see the module doc for the file format)."""

    tenants: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)
    identities: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Parse a policy file; ``ValueError`` naming the path and the entry for a malformed one."""
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(document, dict):
            raise ValueError(f"{path}: a policy is a mapping with 'tenants' and 'identities'")
        tenants: dict[str, tuple[Grant, ...]] = {}
        for tenant, spec in (document.get("tenants") or {}).items():
            grants = []
            for entry in (spec or {}).get("allow") or []:
                actions, resources = entry.get("actions"), entry.get("resources")
                if not isinstance(actions, list) or not isinstance(resources, list):
                    raise ValueError(
                        f"{path}: tenant {tenant!r}: each allow entry needs lists 'actions' and 'resources'"
                    )
                grants.append(Grant(tuple(map(str, actions)), tuple(map(str, resources))))
            tenants[str(tenant)] = tuple(grants)
        identities = {str(k): str(v) for k, v in (document.get("identities") or {}).items()}
        unknown = sorted(set(identities.values()) - set(tenants))
        if unknown:
            raise ValueError(f"{path}: identities map to undefined tenant(s) {', '.join(unknown)}")
        return cls(tenants, identities)

    def allows(self, tenant: str, action: str, resource: str) -> bool:
        return any(grant.allows(action, resource) for grant in self.tenants.get(tenant, ()))


Requirement = tuple[str, str]
"""(action, resource name) a call needs, e.g. ("source.write", "sensor_readings")."""
AccessRule = Callable[[Any], Iterable[Requirement]]
"""What a call needs, computed from its decoded request."""


def needs(action: str, resource: Callable[[Any], str | Iterable[str]] | None = None) -> AccessRule:
    """A rule needing ``action`` on the resource(s) ``resource(request)`` names; an empty name or no
    ``resource`` function means ``ALL``."""

    def rule(request: Any) -> list[Requirement]:
        names = resource(request) if resource is not None else ALL
        if isinstance(names, str):
            names = [names]
        out = [(action, name or ALL) for name in names]
        return out or [(action, ALL)]

    return rule


def all_of(*rules: AccessRule) -> AccessRule:
    """A rule needing everything each of ``rules`` needs."""
    return lambda request: [req for rule in rules for req in rule(request)]


def service_rules(service: str, rules: Mapping[str, AccessRule]) -> dict[str, AccessRule]:
    """``{"/<service>/<Method>": rule}`` from ``{"<Method>": rule}`` (the key the interceptor looks up)."""
    return {f"/{service}/{method}": rule for method, rule in rules.items()}


def peer_identity(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The verified client certificate's identity from ``ServicerContext.auth_context()``: the first
    subject alternative name (URI or DNS, as gRPC lists them), else the subject CN; None without one."""
    if auth_context.get("transport_security_type") != [b"ssl"]:
        return None
    for key in ("x509_subject_alternative_name", "x509_common_name"):
        values = auth_context.get(key) or []
        if values:
            return values[0].decode("utf-8", "replace")
    return None


class Authorizer:
    """Authenticates a call and checks its access rule against the policy (see the module doc)."""

    def __init__(
        self,
        policy: Policy,
        rules: Mapping[str, AccessRule],
        *,
        verifier: TokenVerifier | None,
        accept_certificates: bool,
    ) -> None:
        self.policy = policy
        self.rules = dict(rules)
        self.verifier = verifier
        self.accept_certificates = accept_certificates

    def authenticate(
        self, metadata: Iterable[tuple[str, Any]], auth_context: Mapping[str, Sequence[bytes]]
    ) -> Principal:
        """The caller; raises ``Unauthenticated`` (no or invalid credentials) or ``PermissionDenied``
        (a valid identity with no tenant)."""
        authorization = [str(v) for k, v in metadata if k == "authorization"]
        if authorization:
            scheme, _, token = authorization[0].partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
            if self.verifier is None:
                raise Unauthenticated("bearer tokens are not accepted by this server (no key set configured)")
            subject, tenant = self.verifier.verify(token.strip())
            return self._principal(subject, tenant, "jwt")
        identity = peer_identity(auth_context) if self.accept_certificates else None
        if identity is not None:
            return self._principal(identity, None, "mtls")
        raise Unauthenticated("missing credentials: send 'authorization: Bearer <token>'")

    def _principal(self, subject: str, tenant: str | None, via: str) -> Principal:
        tenant = tenant or self.policy.identities.get(subject)
        if tenant is None:
            raise PermissionDenied(
                f"{subject!r} belongs to no tenant (no tenant claim, not in the policy's identities)"
            )
        if tenant not in self.policy.tenants:
            raise PermissionDenied(f"tenant {tenant!r} is not in the policy")
        return Principal(subject, tenant, via)

    def authorize(self, principal: Principal, method: str, request: Any) -> None:
        """Raise ``PermissionDenied`` unless the tenant holds every requirement of ``method``'s rule."""
        rule = self.rules.get(method)
        if rule is None:
            raise PermissionDenied(f"{method} has no access rule; denied")
        for action, resource in rule(request):
            if not self.policy.allows(principal.tenant, action, resource):
                what = "every resource" if resource == ALL else repr(resource)
                raise PermissionDenied(f"tenant {principal.tenant!r} may not {action} {what}")


def build_authorizer(settings: ServiceSettings, rules: Mapping[str, AccessRule]) -> Authorizer | None:
    """The authorizer ``settings`` configure, None when ``auth_enabled`` is false.

    Raises ``ValueError`` at start-up (never per call) when auth is enabled without a policy file, or
    with neither a JWKS file nor an mTLS client CA (nothing could authenticate).
    """
    if not settings.auth_enabled:
        return None
    if settings.auth_policy_file is None:
        raise ValueError("auth_enabled needs auth_policy_file (the tenants' permissions)")
    accept_certificates = settings.tls_client_ca_file is not None
    if settings.auth_jwks_file is None and not accept_certificates:
        raise ValueError("auth_enabled needs auth_jwks_file (bearer tokens) or tls_client_ca_file (mTLS identities)")
    verifier = (
        TokenVerifier(
            settings.auth_jwks_file,
            audience=settings.auth_audience,
            issuer=settings.auth_issuer,
            leeway_seconds=settings.auth_leeway_seconds,
            tenant_claim=settings.auth_tenant_claim,
        )
        if settings.auth_jwks_file is not None
        else None
    )
    return Authorizer(
        Policy.load(settings.auth_policy_file), rules, verifier=verifier, accept_certificates=accept_certificates
    )
