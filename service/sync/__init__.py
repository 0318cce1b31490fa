"""Outbound sync to EHRs: the outbox worker, its FHIR client (httpx, the only outbound HTTP of
the service), auth to targets, retry policy, circuit breaker, status and replay, and the
inbound pull of a patient's history from an EHR.

Modules: `settings` (SYNC_* env), `targets` (target configs), `auth` (outbound auth),
`client` (FHIR HTTP + CapabilityStatement), `retry` (backoff, Retry-After, breaker),
`bundles` (references, ordering, chunking, rewriting), `worker` (the worker), `pull`
(inbound pull), `admin` (status, metrics, replay, target CRUD for the API and CLI).
"""
