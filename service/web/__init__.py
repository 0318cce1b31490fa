"""Browser pages served by the service (no build step, no CDN): `billing` is the billing
staff's prior-authorization page at `/billing`, a thin client of `/api/v1/coverage`."""
