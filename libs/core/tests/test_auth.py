"""Authentication, authorisation and request decoding in the core gRPC interceptor, on loopback.

Tokens come from a ``DevAuthority`` (an Ed25519 JWKS); the server is a ``GrpcServer`` with auth on and
an access table for a fake ``InferenceService``. Raw bytes go through a generic channel call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aimesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from aimesh.core.auth import ALL, Grant, Policy, TokenVerifier, current_principal, needs, service_rules
from aimesh.core.channels import open_channel
from aimesh.core.devauth import AUDIENCE, ISSUER, DevAuthority
from aimesh.core.errors import Unauthenticated
from aimesh.core.grpc_server import GrpcServer
from aimesh.core.settings import ServiceSettings

SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
SCORE = f"/{SERVICE}/Score"
ACCESS = service_rules(SERVICE, {"Score": needs("model.score", lambda r: r.model)})
TENANTS = {
    "demo": [{"actions": ["*"], "resources": ["*"]}],
    "scorer": [{"actions": ["model.score"], "resources": ["credit_*"]}],
}


class EchoTenant(inference_pb2_grpc.InferenceServiceServicer):
    async def Score(  # type: ignore[override]
        self, request: inference_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ScoreResponse:
        principal = current_principal()
        return inference_pb2.ScoreResponse(request_id=principal.tenant if principal else "", model_name=request.model)


@pytest.fixture
def authority(tmp_path: Path) -> DevAuthority:
    return DevAuthority.create(tmp_path / "auth", tenants=TENANTS, identities={"svc-a": "scorer"})


@pytest.fixture
async def port(authority: DevAuthority) -> AsyncIterator[int]:
    settings = ServiceSettings(grpc_port=0, shutdown_grace_seconds=1, **authority.server_settings())
    server = GrpcServer(
        settings,
        [lambda s: inference_pb2_grpc.add_InferenceServiceServicer_to_server(EchoTenant(), s)],  # type: ignore[abstract]
        [SERVICE],
        access=ACCESS,
    )
    task = asyncio.create_task(server.serve())
    yield server.port
    await server.stop()
    await task


async def score(port: int, token: str | None, model: str = "credit_risk") -> inference_pb2.ScoreResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        response: inference_pb2.ScoreResponse = await stub.Score(
            inference_pb2.ScoreRequest(model=model), metadata=metadata, timeout=5
        )
        return response


async def status_of(port: int, token: str | None, model: str = "credit_risk") -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await score(port, token, model)
    return err.value.code(), err.value.details() or ""


async def test_valid_token_with_the_permission_is_served_as_its_tenant(port: int, authority: DevAuthority) -> None:
    assert (await score(port, authority.mint("alice", tenant="demo"))).request_id == "demo"
    assert (await score(port, authority.mint("bob", tenant="scorer"))).request_id == "scorer"
    # no tenant claim: the policy's identities map the subject
    assert (await score(port, authority.mint("svc-a", tenant=None))).request_id == "scorer"


async def test_missing_or_invalid_tokens_are_unauthenticated(port: int, authority: DevAuthority) -> None:
    cases = {
        "missing": (None, "missing credentials"),
        "garbage": ("not-a-jwt", "invalid bearer token"),
        "bad signature": (authority.mint("a", tenant="demo", key=Ed25519PrivateKey.generate()), "Signature"),
        "expired": (authority.mint("a", tenant="demo", ttl_seconds=-120), "expired"),
        "wrong audience": (authority.mint("a", tenant="demo", audience="someone-else"), "Audience"),
        "wrong issuer": (authority.mint("a", tenant="demo", issuer="evil"), "issuer"),
        "not yet valid": (authority.mint("a", tenant="demo", not_before=2e9), "not yet valid"),
    }
    for name, (token, reason) in cases.items():
        code, details = await status_of(port, token)
        assert code == grpc.StatusCode.UNAUTHENTICATED, name
        assert reason.lower() in details.lower(), (name, details)


async def test_expired_within_leeway_is_accepted(port: int, authority: DevAuthority) -> None:
    assert (await score(port, authority.mint("a", tenant="demo", ttl_seconds=-5))).request_id == "demo"


async def test_tenant_without_the_permission_is_denied_with_the_reason(port: int, authority: DevAuthority) -> None:
    code, details = await status_of(port, authority.mint("bob", tenant="scorer"), model="churn")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == "tenant 'scorer' may not model.score 'churn'"
    code, details = await status_of(port, authority.mint("eve", tenant="nobody"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "nobody" in details
    code, details = await status_of(port, authority.mint("stranger", tenant=None))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "belongs to no tenant" in details


async def test_health_stays_open(port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_channel_helper_sends_the_token_file_and_rereads_it(
    port: int, authority: DevAuthority, tmp_path: Path
) -> None:
    token_file = authority.write_token("caller", "alice", tenant="demo")
    async with open_channel(f"127.0.0.1:{port}", token_file=token_file) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        assert (await stub.Score(inference_pb2.ScoreRequest(model="m"), timeout=5)).request_id == "demo"
        await asyncio.sleep(0.01)
        authority.write_token("caller", "bob", tenant="scorer")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Score(inference_pb2.ScoreRequest(model="m"), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_undecodable_bytes_are_invalid_argument_after_authentication(
    port: int, authority: DevAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    token = authority.mint("alice", tenant="demo")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = channel.unary_unary(SCORE, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
            await raw(b"\xff\xff\xff", timeout=5)
        assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
        caplog.set_level(logging.DEBUG, logger="aimesh.core.grpc_server")
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await raw(b"\xff\xff\xff", metadata=(("authorization", f"Bearer {token}"),), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (err.value.details() or "").startswith(
                "request is not a valid aimesh.api.inference.v1.ScoreRequest: "
            )
    records = [r for r in caplog.records if r.name == "aimesh.core.grpc_server"]
    assert [r.levelname for r in records] == ["WARNING"]  # rate limited, no ERROR
    assert records[0].exc_info is None


def test_verifier_rejects_unknown_kid_and_hmac(authority: DevAuthority) -> None:
    import jwt

    verifier = TokenVerifier(authority.jwks_file, audience=AUDIENCE, issuer=ISSUER)
    assert verifier.verify(authority.mint("a", tenant="t")) == ("a", "t")
    claims = {"sub": "a", "aud": AUDIENCE, "exp": 2e9}
    with pytest.raises(Unauthenticated, match="no key with kid"):
        verifier.verify(jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "x"}))
    hmac = jwt.encode(claims, "secret-secret-secret-secret-secret", algorithm="HS256", headers={"kid": authority.kid})
    with pytest.raises(Unauthenticated, match="not accepted"):
        verifier.verify(hmac)


def test_policy_patterns_and_all_resources(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "tenants:\n  a:\n    allow:\n      - {actions: ['model.*'], resources: ['credit_*']}\n"
        "  b:\n    allow:\n      - {actions: [source.read], resources: ['*']}\n"
    )
    policy = Policy.load(path)
    assert policy.allows("a", "model.promote", "credit_risk")
    assert not policy.allows("a", "model.promote", "churn")
    assert not policy.allows("a", "model.read", ALL)  # a pattern never covers "every model"
    assert policy.allows("b", "source.read", ALL)
    assert not policy.allows("b", "source.write", "x")
    assert not policy.allows("c", "source.read", "x")
    assert Grant(("*",), ("*",)).allows("anything.at_all", ALL)
    path.write_text("tenants: {}\nidentities: {svc: ghost}\n")
    with pytest.raises(ValueError, match="ghost"):
        Policy.load(path)


async def test_enabled_without_a_policy_or_key_set_refuses_to_start(authority: DevAuthority) -> None:
    with pytest.raises(ValueError, match="auth_policy_file"):
        GrpcServer(ServiceSettings(grpc_port=0, auth_enabled=True, auth_jwks_file=authority.jwks_file), [], [])
    with pytest.raises(ValueError, match="auth_jwks_file"):
        GrpcServer(ServiceSettings(grpc_port=0, auth_enabled=True, auth_policy_file=authority.policy_file), [], [])


def test_a_verified_token_is_remembered_until_it_expires_and_forgotten_when_the_keys_change(
    authority: DevAuthority,
) -> None:
    import json
    import time

    verifier = TokenVerifier(authority.jwks_file, audience=AUDIENCE, issuer=ISSUER, leeway_seconds=0)
    short = authority.mint("a", tenant="t", ttl_seconds=2)
    assert verifier.verify(short) == ("a", "t")
    assert verifier.verify(short) == ("a", "t"), "answered from what was verified"
    time.sleep(2.2)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(short)
    token = authority.mint("b", tenant="t")
    assert verifier.verify(token) == ("b", "t")
    document = json.loads(authority.jwks_file.read_text())
    document["keys"][0]["kid"] = "rotated"
    authority.jwks_file.write_text(json.dumps(document))
    with pytest.raises(Unauthenticated, match="no key with kid"):
        verifier.verify(token)


def test_a_torn_key_set_or_token_file_keeps_the_last_good_one(authority: DevAuthority) -> None:
    """A JWKS or token file caught mid-rewrite (empty, half written) is not an error of the call: the last
    key set and token read stay in use until the file is whole again (a service restart in the dev stack
    rewrote them while the others served, and a Score call answered INTERNAL)."""
    from aimesh.core.channels import BearerToken

    verifier = TokenVerifier(authority.jwks_file, audience=AUDIENCE, issuer=ISSUER)
    token_file = authority.write_token("caller", "alice", tenant="demo")
    bearer = BearerToken(token_file)
    first = bearer.value()
    good = authority.jwks_file.read_text()
    for torn in ("", good[: len(good) // 2]):
        authority.jwks_file.write_text(torn)
        assert verifier.verify(authority.mint("a", tenant="t")) == ("a", "t")
    token_file.write_text("")
    assert bearer.value() == first
    authority.jwks_file.write_text(good)
    authority.write_token("caller", "bob", tenant="demo")
    assert bearer.value() != first, "a whole new token is picked up"


def test_dev_authority_rewrites_its_files_atomically(tmp_path: Path) -> None:
    """Readers polling the files while every service start rewrites them never see an empty or partial file."""
    import json
    import threading

    directory = tmp_path / "auth"
    authority = DevAuthority.create(directory)
    authority.write_token("services", "svc", tenant="platform")
    torn: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for name in ("jwks.json", "policy.yaml", "services.token"):
                text = (directory / name).read_text()
                try:
                    whole = bool(text.strip()) and (name != "jwks.json" or bool(json.loads(text)["keys"]))
                except ValueError:
                    whole = False
                if not whole:
                    torn.append(name)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(300):
            DevAuthority.create(directory).write_token("services", "svc", tenant="platform")
    finally:
        done.set()
        reader.join()
    assert torn == []
    assert (directory / "services.token").stat().st_mode & 0o777 == 0o600
