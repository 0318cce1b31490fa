"""EHR targets: their configuration (from the environment or the `sync_target` table) and
validation. A `TargetConfig` holds secrets; it is never logged or returned by the API
(`public_view` is what the API shows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.sync_repository import SyncStore, TargetRecord
from .settings import AUTH_KINDS, ID_POLICIES, SyncSettings


class TargetConfigError(ValueError):
    """A target is configured wrongly (a fatal configuration error for the worker)."""


@dataclass(frozen=True)
class TargetConfig:
    name: str
    base_url: str
    auth: str = "none"
    id_policy: str = "client"
    resource_types: frozenset[str] = frozenset()
    enabled: bool = True
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None
    token_url: str | None = None
    private_key_pem: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    key_id: str | None = None
    alg: str = "RS384"
    scope: str | None = None
    source: str = "api"  # env | api
    max_in_flight: int = 4
    """Requests in flight to this target at once, per worker process (shared by its lanes)."""

    def accepts(self, resource_type: str) -> bool:
        return not self.resource_types or resource_type in self.resource_types

    def private_key(self) -> str:
        if self.private_key_pem:
            return self.private_key_pem
        if self.private_key_file:
            try:
                return Path(self.private_key_file).expanduser().read_text()
            except OSError as error:
                raise TargetConfigError(f"target {self.name}: cannot read the private key file ({error.strerror})") from None
        raise TargetConfigError(f"target {self.name}: SMART auth needs a private key")

    def validate(self) -> "TargetConfig":
        if not self.name or len(self.name) > 64 or not all(c.isalnum() or c in "-_." for c in self.name):
            raise TargetConfigError("target name: 1-64 letters, digits, '-', '_' or '.'")
        if not self.base_url.startswith(("http://", "https://")):
            raise TargetConfigError(f"target {self.name}: base URL must be http(s)")
        if self.auth not in AUTH_KINDS:
            raise TargetConfigError(f"target {self.name}: auth must be one of {', '.join(AUTH_KINDS)}")
        if not 1 <= self.max_in_flight <= 64:
            raise TargetConfigError(f"target {self.name}: max_in_flight must be 1-64")
        if self.id_policy not in ID_POLICIES:
            raise TargetConfigError(f"target {self.name}: id_policy must be client or server")
        if self.auth == "bearer" and not self.token:
            raise TargetConfigError(f"target {self.name}: bearer auth needs a token")
        if self.auth == "basic" and not (self.username and self.password is not None):
            raise TargetConfigError(f"target {self.name}: basic auth needs a username and password")
        if self.auth == "smart":
            if not self.client_id or not self.key_id:
                raise TargetConfigError(f"target {self.name}: SMART auth needs client_id and key_id")
            if self.alg not in ("RS384", "ES384"):
                raise TargetConfigError(f"target {self.name}: SMART alg must be RS384 or ES384")
            if not (self.private_key_pem or self.private_key_file):
                raise TargetConfigError(f"target {self.name}: SMART auth needs a private key")
        return self

    def public_view(self) -> dict[str, Any]:
        """What the API may show: everything but secrets (only whether one is set)."""
        return {
            "name": self.name, "base_url": self.base_url, "auth": self.auth, "id_policy": self.id_policy,
            "resource_types": sorted(self.resource_types), "enabled": self.enabled, "username": self.username,
            "client_id": self.client_id, "token_url": self.token_url, "key_id": self.key_id,
            "alg": self.alg if self.auth == "smart" else None, "scope": self.scope,
            "private_key_file": self.private_key_file,
            "secret_set": bool(self.token or self.password or self.private_key_pem), "source": self.source,
        }


def _types(text: str | None) -> frozenset[str]:
    return frozenset(t.strip() for t in (text or "").split(",") if t.strip())


def target_from_settings(settings: SyncSettings) -> TargetConfig | None:
    if not settings.target_url:
        return None
    return TargetConfig(
        name=settings.target_name,
        base_url=settings.target_url.rstrip("/"),
        auth=settings.target_auth,
        id_policy=settings.target_id_policy,
        resource_types=_types(settings.target_types),
        token=settings.target_token.get_secret_value() if settings.target_token else None,
        username=settings.target_username,
        password=settings.target_password.get_secret_value() if settings.target_password else None,
        client_id=settings.target_client_id,
        token_url=settings.target_token_url,
        private_key_file=settings.target_private_key_file,
        key_id=settings.target_key_id,
        alg=settings.target_alg,
        scope=settings.target_scope,
        source="env",
        max_in_flight=settings.target_max_in_flight,
    )


def target_from_record(record: TargetRecord) -> TargetConfig:
    secret = record.secret
    return TargetConfig(
        name=record.name,
        base_url=record.base_url.rstrip("/"),
        auth=record.auth,
        id_policy=record.id_policy,
        resource_types=frozenset(record.resource_types),
        enabled=record.enabled,
        token=secret if record.auth == "bearer" else None,
        username=record.username,
        password=secret if record.auth == "basic" else None,
        client_id=record.client_id,
        token_url=record.token_url,
        private_key_pem=secret if record.auth == "smart" else None,
        private_key_file=record.private_key_file,
        key_id=record.key_id,
        alg=record.alg or "RS384",
        scope=record.scope,
        source="api",
    )


def record_from_target(target: TargetConfig) -> TargetRecord:
    secret = {"bearer": target.token, "basic": target.password, "smart": target.private_key_pem}.get(target.auth)
    return TargetRecord(
        name=target.name, base_url=target.base_url, auth=target.auth, id_policy=target.id_policy,
        resource_types=tuple(sorted(target.resource_types)), enabled=target.enabled, username=target.username,
        client_id=target.client_id, token_url=target.token_url, key_id=target.key_id,
        alg=target.alg if target.auth == "smart" else None, scope=target.scope, private_key_file=target.private_key_file,
        secret=secret,
    )


def load_targets(store: SyncStore, settings: SyncSettings) -> list[TargetConfig]:
    """Every configured target: the table's, plus the environment's (which wins on a name clash)."""
    targets = {r.name: target_from_record(r) for r in store.list_targets()}
    env = target_from_settings(settings)
    if env is not None:
        targets[env.name] = env
    return [targets[name] for name in sorted(targets)]


def find_target(store: SyncStore, settings: SyncSettings, name: str) -> TargetConfig:
    for target in load_targets(store, settings):
        if target.name == name:
            return target
    raise TargetConfigError(f"no sync target named {name!r}")
