"""The outbound FHIR client (httpx): capabilities, PUT, conditional PUT, DELETE, transaction
Bundles and paged searches against one target, with auth applied and failures classified
(`TemporaryError`, `PermanentError`). A 401 drops the cached token and retries once.

Nothing here logs resource content: only types, ids, counts and status codes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import orjson

from .auth import OutboundAuth, make_auth
from .errors import PermanentError, TemporaryError
from .retry import is_temporary_status, parse_retry_after
from .targets import TargetConfig

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
DEFAULT_TRANSACTION_LIMIT = 50

_LOCATION = re.compile(r"(?:^|/)([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([^/]+))?/?$")
_ETAG = re.compile(r'^(?:W/)?"?([^"]+)"?$')


@dataclass(frozen=True)
class Capabilities:
    """What the target's CapabilityStatement says we may do."""

    transactions: bool = False
    conditional_update: frozenset[str] | None = None
    """Resource types with conditionalUpdate=true; None = not declared anywhere."""
    max_transaction_entries: int = DEFAULT_TRANSACTION_LIMIT
    max_conditional_entries: int | None = None
    fhir_version: str | None = None
    limits_declared: dict[str, int] = field(default_factory=dict)

    def supports_conditional_update(self, resource_type: str) -> bool:
        return bool(self.conditional_update) and resource_type in (self.conditional_update or ())


def parse_capabilities(statement: dict[str, Any]) -> Capabilities:
    """Read transaction support, per-type conditional update and bundle limits.

    Limits come from extensions (on the statement or on `rest`) whose url names a maximum of
    bundle/transaction entries or of conditional entries, e.g. the Medplum peer's; without a
    declared limit a transaction-capable server gets `DEFAULT_TRANSACTION_LIMIT`."""
    rests = [r for r in statement.get("rest") or [] if r.get("mode", "server") == "server"] or (statement.get("rest") or [])
    transactions = False
    conditional: set[str] = set()
    limits: dict[str, int] = {}
    for rest in rests:
        if any(i.get("code") == "transaction" for i in rest.get("interaction") or []):
            transactions = True
        for resource in rest.get("resource") or []:
            if resource.get("conditionalUpdate") is True and resource.get("type"):
                conditional.add(resource["type"])
    for ext in _all_extensions(statement):
        url = str(ext.get("url", ""))
        value = next((v for k, v in ext.items() if k.startswith("value") and isinstance(v, int)), None)
        if value is not None and value > 0:
            limits[url.rsplit("/", 1)[-1].rsplit("#", 1)[-1]] = value
    max_entries = DEFAULT_TRANSACTION_LIMIT
    max_conditional = None
    for name, value in limits.items():
        lowered = name.lower()
        if "conditional" in lowered:
            max_conditional = value if max_conditional is None else min(max_conditional, value)
        elif any(word in lowered for word in ("put", "entr", "bundle", "transaction", "size")):
            max_entries = min(max_entries, value) if max_entries != DEFAULT_TRANSACTION_LIMIT else value
    return Capabilities(
        transactions=transactions,
        conditional_update=frozenset(conditional) if conditional else None,
        max_transaction_entries=max(1, max_entries),
        max_conditional_entries=max_conditional,
        fhir_version=statement.get("fhirVersion"),
        limits_declared=limits,
    )


def _all_extensions(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for ext in node.get("extension") or []:
            if isinstance(ext, dict):
                yield ext
                yield from _all_extensions(ext)
        for key, value in node.items():
            if key != "extension" and key != "resource":
                yield from _all_extensions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_extensions(value)


def outcome_text(response: httpx.Response) -> str:
    """The OperationOutcome's issue texts (diagnostics / details), or the status line."""
    prefix = f"HTTP {response.status_code}"
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        outcome = body
        if body.get("resourceType") == "Bundle":  # a transaction-response carrying an outcome
            outcome = next(
                (e.get("response", {}).get("outcome") for e in body.get("entry") or [] if e.get("response", {}).get("outcome")),
                body,
            )
        texts = []
        for issue in outcome.get("issue") or []:
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if text:
                texts.append(f"{issue.get('severity', 'error')}: {text}")
        if texts:
            return f"{prefix}: " + "; ".join(texts)
    return f"{prefix} {response.reason_phrase}".strip()


@dataclass(frozen=True)
class Written:
    """Where a resource ended up on the target."""

    target_id: str | None
    target_version: str | None


def written_from(location: str | None, etag: str | None = None, body: Any = None) -> Written:
    target_id = version = None
    if location:
        match = _LOCATION.search(location.split("?", 1)[0])
        if match:
            target_id, version = match.group(2), match.group(3)
    if etag and not version:
        m = _ETAG.match(etag.strip())
        version = m.group(1) if m else None
    if isinstance(body, dict):
        target_id = target_id or body.get("id")
        version = version or (body.get("meta") or {}).get("versionId")
    return Written(target_id, version)


class FhirTargetClient:
    """HTTP to one FHIR target. Thread-safe (one httpx.Client shared by the worker's lanes)."""

    def __init__(
        self, target: TargetConfig, *, http: httpx.Client | None = None, auth: OutboundAuth | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.target = target
        self.base = target.base_url.rstrip("/")
        self.http = http or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"User-Agent": "ketamine-fhir-service-sync/0.1"},
        )
        self.auth = auth or make_auth(target, self.http)
        self._capabilities: Capabilities | None = None
        self.reauthentications = 0

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ plumbing

    def request(
        self, method: str, path_or_url: str, *, content: bytes | None = None, params: dict[str, str] | None = None,
        expect_json: bool = True,
    ) -> httpx.Response:
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else f"{self.base}/{path_or_url.lstrip('/')}"
        headers = {"Accept": FHIR_JSON}
        if content is not None:
            headers["Content-Type"] = FHIR_JSON
        for attempt in (1, 2):
            request_headers = {**headers, **self.auth.headers()}
            try:
                response = self.http.request(method, url, content=content, params=params, headers=request_headers)
            except httpx.HTTPError as error:  # timeouts, refused and dropped connections
                raise TemporaryError(None, f"{type(error).__name__} on {method}") from None
            if response.status_code == 401 and attempt == 1:
                self.reauthentications += 1
                self.auth.invalidate()
                continue
            break
        status = response.status_code
        if status < 300:
            return response
        if is_temporary_status(status):
            raise TemporaryError(status, outcome_text(response), parse_retry_after(response.headers.get("Retry-After")))
        if status == 401:
            raise PermanentError(status, outcome_text(response) + " (after re-authenticating)")
        raise PermanentError(status, outcome_text(response))

    def capabilities(self, refresh: bool = False) -> Capabilities:
        if self._capabilities is None or refresh:
            response = self.request("GET", "metadata")
            self._capabilities = parse_capabilities(orjson.loads(response.content))
            caps = self._capabilities
            log.info(
                "sync target %s: transactions=%s conditional_update=%s max_entries=%s max_conditional=%s",
                self.target.name, caps.transactions, len(caps.conditional_update or ()), caps.max_transaction_entries,
                caps.max_conditional_entries,
            )
        return self._capabilities

    # ------------------------------------------------------------------ interactions

    def put(self, resource_type: str, resource_id: str, body: bytes) -> Written:
        response = self.request("PUT", f"{resource_type}/{resource_id}", content=body)
        return self._written(response, default_id=resource_id)

    def conditional_put(self, resource_type: str, match: tuple[str, str], body: bytes) -> Written:
        """Conditional update: `match` is (search parameter, token), e.g. ("identifier", "s|v")."""
        response = self.request("PUT", conditional_url(resource_type, match), content=body)
        return self._written(response)

    def delete(self, resource_type: str, resource_id: str) -> None:
        try:
            self.request("DELETE", f"{resource_type}/{resource_id}")
        except PermanentError as error:
            if error.status in (404, 410):  # already gone: what we wanted
                return
            raise

    def transaction(self, bundle: bytes) -> list[dict[str, Any]]:
        """POST a transaction Bundle; the response entries in request order."""
        response = self.request("POST", "", content=bundle)
        body = orjson.loads(response.content)
        return [e.get("response") or {} for e in body.get("entry") or []]

    def search(self, resource_type: str, params: dict[str, str], *, max_pages: int = 1000) -> Iterator[dict[str, Any]]:
        """Every resource of `resource_type` a search matches, following `next` links."""
        url: str | None = resource_type
        query: dict[str, str] | None = params
        for _ in range(max_pages):
            if url is None:
                return
            response = self.request("GET", url, params=query)
            bundle = orjson.loads(response.content)
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource")
                if isinstance(resource, dict) and resource.get("resourceType") == resource_type:
                    if (entry.get("search") or {}).get("mode", "match") == "match":
                        yield resource
            url = next((link.get("url") for link in bundle.get("link") or [] if link.get("relation") == "next"), None)
            query = None

    def _written(self, response: httpx.Response, default_id: str | None = None) -> Written:
        body = None
        if response.content:
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = None
        written = written_from(
            response.headers.get("Content-Location") or response.headers.get("Location"), response.headers.get("ETag"), body
        )
        if written.target_id is None and default_id:
            written = Written(default_id, written.target_version)
        return written


def conditional_url(resource_type: str, match: tuple[str, str]) -> str:
    """`Type?param=system|value` (param: identifier or _tag), system and value URL-encoded."""
    param, token = match
    system, _, value = token.partition("|")
    return f"{resource_type}?{param}={quote(system, safe=':/.')}|{quote(value, safe='')}"
