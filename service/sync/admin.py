"""Sync administration for the API and the CLI: targets (secrets write-only), status per
record / resource / target, metrics (JSON and Prometheus text), dead-letter replay, backfill
and inbound pull. Functions over a `SyncStore`; no web framework here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..store.sync_repository import StatusQuery, SyncStore
from .pull import PullReport, pull_patient
from .settings import SyncSettings
from .targets import (
    TargetConfig,
    TargetConfigError,
    find_target,
    load_targets,
    record_from_target,
    target_from_record,
)

TARGET_FIELDS = (
    "base_url", "auth", "id_policy", "resource_types", "enabled", "username", "client_id", "token_url", "key_id",
    "alg", "scope", "private_key_file",
)
SECRET_FIELDS = ("token", "password", "private_key")


class SyncAdmin:
    def __init__(self, store: SyncStore, settings: SyncSettings | None = None) -> None:
        self.store = store
        self.settings = settings or SyncSettings()

    # ------------------------------------------------------------------ targets

    def targets(self) -> list[dict[str, Any]]:
        return [t.public_view() for t in load_targets(self.store, self.settings)]

    def target(self, name: str) -> dict[str, Any]:
        return find_target(self.store, self.settings, name).public_view()

    def put_target(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a stored target. Secrets (`token`, `password`, `private_key`) are
        write-only; leaving them out keeps the stored one."""
        unknown = set(payload) - set(TARGET_FIELDS) - set(SECRET_FIELDS) - {"name"}
        if unknown:
            raise TargetConfigError(f"unknown target fields: {', '.join(sorted(unknown))}")
        if payload.get("name", name) != name:
            raise TargetConfigError("the name in the body differs from the name in the URL")
        env_names = {t.name for t in load_targets(self.store, self.settings) if t.source == "env"}
        if name in env_names:
            raise TargetConfigError(f"target {name!r} comes from the environment (SYNC_TARGET_*); change it there")
        existing = self.store.get_target(name)
        base = target_from_record(existing) if existing else None
        types = payload.get("resource_types", sorted(base.resource_types) if base else [])
        if isinstance(types, str):
            types = [t.strip() for t in types.split(",") if t.strip()]
        auth = payload.get("auth", base.auth if base else "none")
        secret = payload.get({"bearer": "token", "basic": "password", "smart": "private_key"}.get(auth, ""), None)
        config = TargetConfig(
            name=name,
            base_url=str(payload.get("base_url", base.base_url if base else "")).rstrip("/"),
            auth=auth,
            id_policy=payload.get("id_policy", base.id_policy if base else "client"),
            resource_types=frozenset(types),
            enabled=bool(payload.get("enabled", base.enabled if base else True)),
            username=payload.get("username", base.username if base else None),
            client_id=payload.get("client_id", base.client_id if base else None),
            token_url=payload.get("token_url", base.token_url if base else None),
            key_id=payload.get("key_id", base.key_id if base else None),
            alg=payload.get("alg") or (base.alg if base else "RS384"),
            scope=payload.get("scope", base.scope if base else None),
            private_key_file=payload.get("private_key_file", base.private_key_file if base else None),
        )
        if secret is not None:
            config = replace(config, token=secret if auth == "bearer" else None,
                             password=secret if auth == "basic" else None,
                             private_key_pem=secret if auth == "smart" else None)
        elif base is not None and base.auth == auth:
            config = replace(config, token=base.token, password=base.password, private_key_pem=base.private_key_pem)
        config.validate()
        record = record_from_target(config)
        self.store.save_target(record, keep_secret=False)
        self.store.ensure_cursor(name)
        return self.target(name)

    def delete_target(self, name: str) -> bool:
        return self.store.delete_target(name)

    # ------------------------------------------------------------------ visibility

    def status(self, query: StatusQuery) -> dict[str, Any]:
        rows = self.store.status(query)
        return {
            "items": [r.document() for r in rows],
            "counts": self.store.status_counts(query.target),
            "limit": query.limit,
            "offset": query.offset,
        }

    def metrics(self) -> dict[str, Any]:
        counts = self.store.status_counts()
        counters = self.store.counters()
        targets = {}
        for target in sorted(set(counts) | set(counters) | {t.name for t in load_targets(self.store, self.settings)}):
            cursor, newest = self.store.cursor(target)
            targets[target] = {
                "status": counts.get(target, {s: 0 for s in ("pending", "sending", "sent", "retrying", "dead")}),
                "counters": {k: counters.get(target, {}).get(k, 0) for k in ("sent", "retried", "dead", "deferred", "replayed")},
                "outbox_lag": max(0, newest - cursor),
            }
        return {"targets": targets}

    def prometheus(self) -> str:
        metrics = self.metrics()["targets"]
        lines = [
            "# HELP sync_items Delivery rows per target and status.",
            "# TYPE sync_items gauge",
        ]
        for target, m in metrics.items():
            for status, n in sorted(m["status"].items()):
                lines.append(f'sync_items{{target="{target}",status="{status}"}} {n}')
        lines += ["# HELP sync_events_total Delivery events per target.", "# TYPE sync_events_total counter"]
        for target, m in metrics.items():
            for name, n in sorted(m["counters"].items()):
                lines.append(f'sync_events_total{{target="{target}",event="{name}"}} {n}')
        lines += ["# HELP sync_outbox_lag Outbox rows not yet taken in by a target.", "# TYPE sync_outbox_lag gauge"]
        for target, m in metrics.items():
            lines.append(f'sync_outbox_lag{{target="{target}"}} {m["outbox_lag"]}')
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ actions

    def replay(self, target: str, resource: str | None = None) -> int:
        find_target(self.store, self.settings, target)
        key = None
        if resource:
            resource_type, sep, resource_id = resource.partition("/")
            if not sep or not resource_type or not resource_id:
                raise TargetConfigError("resource must be Type/id")
            key = (resource_type, resource_id)
        return self.store.replay(target, key)

    def backfill(self, target: str) -> None:
        find_target(self.store, self.settings, target)
        self.store.backfill(target)

    def pull(self, target: str, identifier: str, clinic_id: str | None = None) -> PullReport:
        config = find_target(self.store, self.settings, target)
        return pull_patient(self.store, config, identifier, clinic_id=clinic_id)
