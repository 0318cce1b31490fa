"""Public-key sources for bearer-token verification (JWKS), and the local dev key pair.

A *key source* answers one question: "which public JWK verifies a token whose header says
`kid` / `alg`?" (`KeySource.key_for`). Three implementations:

- `StaticJwks`: a JWK Set given as a dict (tests, embedding).
- `FileJwksSource`: a JWK Set file (offline deployments); re-read when the file changes, so
  rotating keys on disk needs no restart.
- `UrlJwksSource`: a JWK Set URL fetched with httpx, cached for `ttl_seconds`; a token with an
  unknown `kid` triggers one refetch (the IdP rotated its keys), but never more often than
  `min_refetch_seconds`, so a flood of forged `kid`s cannot hammer the IdP. If a refetch fails
  the cached keys stay in use.

Only signing keys of type RSA (>= 2048 bits) and EC (P-256, P-384) are ever loaded; symmetric
(`oct`) entries are dropped, so an HMAC key can never be selected. Key material is never taken
from the token itself (`jku`, `x5u`, `jwk` headers are ignored).

The dev key pair (RS384) lives in `<dev_key_dir>/dev-private.pem` with its public JWK Set in
`<dev_key_dir>/dev-jwks.json` (`.local/` is git-ignored); `ensure_dev_keypair` creates it once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from jose import jwk as jose_jwk

from service.auth.errors import AuthError, unauthorized

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "ES256", "ES384")
"""The only JWS algorithms ever accepted. No `none`, no HS*, no PS* (not needed)."""

_EC_CURVE_FOR_ALG = {"ES256": "P-256", "ES384": "P-384"}
_MIN_RSA_BITS = 2048

DEV_PRIVATE_KEY_FILE = "dev-private.pem"
DEV_JWKS_FILE = "dev-jwks.json"
DEV_ALGORITHM = "RS384"


class KeySource(Protocol):
    """Something that finds the public JWK for a token header."""

    def key_for(self, kid: str | None, alg: str) -> Mapping[str, Any]:
        """The public JWK (dict) to verify a token signed with `alg` under `kid`.

        Raises `AuthError` 401 `unknown_kid` when no suitable key exists, 503
        `jwks_unavailable` when the keys cannot be obtained at all.
        """
        ...


# --------------------------------------------------------------------------- JWK Set handling


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _usable_signing_key(key: Mapping[str, Any]) -> bool:
    """Only asymmetric signature keys that are strong enough; everything else is dropped."""
    if key.get("use") not in (None, "sig"):
        return False
    ops = key.get("key_ops")
    if ops is not None and "verify" not in ops:
        return False
    if key.get("alg") is not None and key.get("alg") not in ALLOWED_ALGORITHMS:
        return False
    kty = key.get("kty")
    if kty == "RSA":
        try:
            bits = int.from_bytes(_b64url_decode(str(key["n"])), "big").bit_length()
        except (KeyError, ValueError):
            return False
        return bits >= _MIN_RSA_BITS and "e" in key
    if kty == "EC":
        return key.get("crv") in _EC_CURVE_FOR_ALG.values() and "x" in key and "y" in key
    return False  # "oct" (HMAC secrets), "OKP" and unknown types


def key_matches_alg(key: Mapping[str, Any], alg: str) -> bool:
    """Whether `key` may verify a signature made with `alg` (key type, curve and JWK `alg`)."""
    if alg not in ALLOWED_ALGORITHMS:
        return False
    if key.get("alg") is not None and key["alg"] != alg:
        return False
    if alg.startswith("RS"):
        return key.get("kty") == "RSA"
    return key.get("kty") == "EC" and key.get("crv") == _EC_CURVE_FOR_ALG[alg]


def parse_jwks(document: Any) -> list[dict[str, Any]]:
    """The usable public signing keys of a JWK Set document (`{"keys": [...]}`)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set: expected an object with a 'keys' array")
    usable: list[dict[str, Any]] = []
    for entry in document["keys"]:
        if isinstance(entry, Mapping) and _usable_signing_key(entry):
            # keep public members only: a JWKS that leaks private parts must not make us hold them
            usable.append({k: v for k, v in entry.items() if k not in {"d", "p", "q", "dp", "dq", "qi", "k"}})
        else:
            log.info("JWKS entry skipped (not a usable RSA>=2048/EC P-256/P-384 signing key)")
    return usable


def select_key(keys: list[dict[str, Any]], kid: str | None, alg: str) -> dict[str, Any] | None:
    """The key for `kid` that fits `alg`; without `kid`, the only key that fits `alg` (if unique)."""
    if kid is not None:
        for key in keys:
            if key.get("kid") == kid:
                return key if key_matches_alg(key, alg) else None
        return None
    candidates = [key for key in keys if key_matches_alg(key, alg)]
    return candidates[0] if len(candidates) == 1 else None


def _unknown_kid() -> AuthError:
    return unauthorized("unknown_kid", "The token's signing key is not known to this server.")


# --------------------------------------------------------------------------- sources


class StaticJwks:
    """A fixed JWK Set."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks)

    def key_for(self, kid: str | None, alg: str) -> Mapping[str, Any]:
        key = select_key(self._keys, kid, alg)
        if key is None:
            raise _unknown_kid()
        return key


class FileJwksSource:
    """A JWK Set read from a file; re-read when its modification time or size changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: list[dict[str, Any]] = []

    def _load(self) -> list[dict[str, Any]]:
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError as exc:
                if self._stamp is not None:
                    log.warning("JWKS file %s unreadable (%s); keeping the keys loaded before", self.path, exc)
                    return self._keys
                raise AuthError(503, "jwks_unavailable", "The token verification keys are unavailable.") from exc
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                try:
                    self._keys = parse_jwks(json.loads(self.path.read_text(encoding="utf-8")))
                except (OSError, ValueError) as exc:
                    if self._stamp is None:
                        raise AuthError(
                            503, "jwks_unavailable", "The token verification keys are unavailable."
                        ) from exc
                    log.warning("JWKS file %s invalid (%s); keeping the keys loaded before", self.path, exc)
                    return self._keys
                self._stamp = stamp
            return self._keys

    def key_for(self, kid: str | None, alg: str) -> Mapping[str, Any]:
        key = select_key(self._load(), kid, alg)
        if key is None:
            raise _unknown_kid()
        return key


@dataclass
class _FetchStats:
    """Counters for observability and tests."""

    attempts: int = 0
    failures: int = 0


class UrlJwksSource:
    """A JWK Set fetched over HTTP(S), cached with a TTL, refetched on an unknown `kid`.

    `clock` is a monotonic seconds function (injectable for tests). Thread-safe: concurrent
    requests with the same unknown `kid` cause a single fetch.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = 300,
        min_refetch_seconds: float = 30,
        timeout_seconds: float = 5.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl_seconds = ttl_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._client = client or httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[dict[str, Any]] | None = None
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self.stats = _FetchStats()

    def _fetch_locked(self) -> None:
        self._attempted_at = self._clock()
        self.stats.attempts += 1
        try:
            response = self._client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            self.stats.failures += 1
            log.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
            if self._keys is None:
                raise AuthError(503, "jwks_unavailable", "The token verification keys are unavailable.") from exc
            return  # keep serving the keys we have
        self._keys = keys
        self._fetched_at = self._attempted_at

    def _may_refetch_locked(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self.min_refetch_seconds

    def key_for(self, kid: str | None, alg: str) -> Mapping[str, Any]:
        with self._lock:
            now = self._clock()
            expired = self._fetched_at is None or now - self._fetched_at >= self.ttl_seconds
            if self._keys is None or (expired and self._may_refetch_locked()):
                self._fetch_locked()
            assert self._keys is not None
            key = select_key(self._keys, kid, alg)
            if key is None and self._may_refetch_locked():
                # key rotation: the IdP may have published a new key since we last looked
                self._fetch_locked()
                key = select_key(self._keys, kid, alg)
        if key is None:
            raise _unknown_kid()
        return key

    def close(self) -> None:
        self._client.close()


# --------------------------------------------------------------------------- dev key pair


@dataclass(frozen=True)
class DevKeyPair:
    """The local dev signing key: PEM private key, its public JWK and `kid`."""

    private_pem: bytes
    public_jwk: dict[str, Any]
    kid: str
    jwks_path: Path

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


def _thumbprint_kid(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key."""
    import hashlib

    canonical = json.dumps({"e": public_jwk["e"], "kty": "RSA", "n": public_jwk["n"]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def public_jwk_from_private_pem(private_pem: bytes, alg: str = DEV_ALGORITHM) -> dict[str, Any]:
    """The public JWK (with `kid` = thumbprint, `use`, `alg`) of an RSA private key PEM."""
    public = jose_jwk.construct(private_pem, alg).public_key().to_dict()
    jwk = {"kty": "RSA", "n": public["n"], "e": public["e"]}
    return {**jwk, "kid": _thumbprint_kid(jwk), "use": "sig", "alg": alg}


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_dev_keypair(key_dir: str | os.PathLike[str]) -> DevKeyPair:
    """Load the dev key pair from `key_dir`, creating it (RSA 2048, RS384) on first use.

    The private key is the source of truth: it is created at most once (first writer wins when
    several processes race), and the public JWKS beside it is always re-derived from it.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    directory = Path(key_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path = directory / DEV_PRIVATE_KEY_FILE
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".dev-private.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                os.link(tmp, private_path)  # atomic, never overwrites
        finally:
            Path(tmp).unlink(missing_ok=True)
    private_pem = private_path.read_bytes()
    public_jwk = public_jwk_from_private_pem(private_pem)
    jwks_path = directory / DEV_JWKS_FILE
    document = json.dumps({"keys": [public_jwk]}, indent=2).encode() + b"\n"
    try:
        current = jwks_path.read_bytes()
    except OSError:
        current = b""
    if current != document:
        _atomic_write(jwks_path, document, 0o644)
    return DevKeyPair(private_pem=private_pem, public_jwk=public_jwk, kid=public_jwk["kid"], jwks_path=jwks_path)


# --------------------------------------------------------------------------- from settings

_SOURCES: dict[tuple[Any, ...], KeySource] = {}
_SOURCES_LOCK = threading.Lock()


def key_source_for(settings: Any) -> KeySource:
    """The process-wide key source for `settings` (one cache per configuration).

    dev mode: the dev key pair's JWKS file (created if needed); jwt mode: `jwks_url` or
    `jwks_file`.
    """
    if settings.mode == "dev":
        identity: tuple[Any, ...] = ("dev", str(Path(settings.dev_key_dir).resolve()))
    elif settings.jwks_url:
        identity = (
            "url",
            settings.jwks_url,
            settings.jwks_cache_ttl_seconds,
            settings.jwks_min_refetch_seconds,
            settings.jwks_timeout_seconds,
        )
    elif settings.jwks_file:
        identity = ("file", str(Path(settings.jwks_file).resolve()))
    else:
        raise AuthError(503, "jwks_unavailable", "No token verification keys are configured.")
    with _SOURCES_LOCK:
        source = _SOURCES.get(identity)
        if source is None:
            if identity[0] == "dev":
                source = FileJwksSource(ensure_dev_keypair(settings.dev_key_dir).jwks_path)
            elif identity[0] == "url":
                source = UrlJwksSource(
                    settings.jwks_url,
                    ttl_seconds=settings.jwks_cache_ttl_seconds,
                    min_refetch_seconds=settings.jwks_min_refetch_seconds,
                    timeout_seconds=settings.jwks_timeout_seconds,
                )
            else:
                source = FileJwksSource(settings.jwks_file)
            _SOURCES[identity] = source
        return source
