"""FHIR operations, one module per `$operation` (each with `register(router, registry)`)."""
