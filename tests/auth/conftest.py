"""Fixtures for the auth tests: real key pairs (RSA 2048, EC P-256/P-384), a JWK Set, settings
at a frozen instant, a token factory, and a JWKS served over HTTP from a local thread.

No part of python-jose is mocked: every token here is really signed and really verified.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk as jose_jwk
from jose import jwt as jose_jwt

from service.auth.settings import AuthSettings

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z, a frozen "now" for every time check
ISSUER = "https://idp.example.org/realms/ketamine"
AUDIENCE = "https://fhir.example.org/fhir"


@dataclass(frozen=True)
class SigningKey:
    """A private key PEM, its algorithm and its public JWK (with kid)."""

    kid: str
    alg: str
    private_pem: str
    public_pem: str
    public_jwk: dict[str, Any]


def _rsa(kid: str, alg: str = "RS384") -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _wrap(kid, alg, key)


def _ec(kid: str, alg: str) -> SigningKey:
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
    return _wrap(kid, alg, ec.generate_private_key(curve))


def _wrap(kid: str, alg: str, key: Any) -> SigningKey:
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    public = jose_jwk.construct(public_pem, alg).to_dict()
    public_jwk = {k: v for k, v in public.items() if k not in {"alg"}} | {"kid": kid, "use": "sig"}
    return SigningKey(kid, alg, private_pem, public_pem, public_jwk)


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return _rsa("rsa-1")


@pytest.fixture(scope="session")
def rsa_key_2() -> SigningKey:
    """A second RSA key (rotation target)."""
    return _rsa("rsa-2")


@pytest.fixture(scope="session")
def attacker_rsa_key() -> SigningKey:
    """An RSA key the server does not trust, published under the *same* kid as `rsa_key`."""
    return _rsa("rsa-1", "RS256")


@pytest.fixture(scope="session")
def ec384_key() -> SigningKey:
    return _ec("ec-384", "ES384")


@pytest.fixture(scope="session")
def ec256_key() -> SigningKey:
    return _ec("ec-256", "ES256")


@pytest.fixture(scope="session")
def jwks(rsa_key: SigningKey, ec384_key: SigningKey, ec256_key: SigningKey) -> dict[str, Any]:
    return {"keys": [rsa_key.public_jwk, ec384_key.public_jwk, ec256_key.public_jwk]}


@pytest.fixture
def settings(tmp_path: Any) -> AuthSettings:
    jwks_file = tmp_path / "unused-jwks.json"
    return AuthSettings(
        mode="jwt",
        environment="development",
        issuer=ISSUER,
        audience=(AUDIENCE,),
        token_endpoint="https://idp.example.org/realms/ketamine/token",
        jwks_file=jwks_file,
        dev_key_dir=tmp_path / "dev-keys",
    )


def base_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ehr-client-7",
        "client_id": "ehr-client-7",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 300,
        "jti": "3f0c2a1e-8d0b-4c55-9d7e-6c3b1f0a9e11",
        "scope": "system/*.rs",
        "clinic": "clinic-north",
        "roles": ["ehr-system"],
    }
    for name, value in overrides.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


_DROP = _Drop()
DROP: Any = _DROP
"""Pass as a claim override to remove the claim."""


def sign(
    key: SigningKey, claims: dict[str, Any], *, alg: str | None = None, headers: dict[str, Any] | None = None
) -> str:
    """A real JWS signed by `key` (kid header = key.kid unless `headers` overrides it)."""
    return jose_jwt.encode(
        claims, key.private_pem, algorithm=alg or key.alg, headers={"kid": key.kid, **(headers or {})}
    )


@pytest.fixture
def make_token(rsa_key: SigningKey) -> Callable[..., str]:
    def factory(key: SigningKey | None = None, **overrides: Any) -> str:
        return sign(key or rsa_key, base_claims(**overrides))

    return factory


# --------------------------------------------------------------------------- JWKS over HTTP


@dataclass
class JwksServer:
    """A JWK Set served from 127.0.0.1 by `http.server` in a thread; mutable, counts requests."""

    url: str
    document: dict[str, Any]
    requests: int = 0
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def jwks_server(jwks: dict[str, Any]) -> Iterator[JwksServer]:
    state = JwksServer(url="", document={"keys": list(jwks["keys"])})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            with state.lock:
                state.requests += 1
                status, body = state.status, json.dumps(state.document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # silence test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
