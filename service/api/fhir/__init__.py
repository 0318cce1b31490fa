"""The FHIR R4 REST API under /fhir (application/fhir+json), one module per interaction in
the manner of Medplum's fhir-router: metadata, read, vread, history, search, create, update,
delete, transaction/batch, and operations/ ($validate, Patient/$everything, bulk $export).

`install_fhir_api(app)` adds the routes (in matching order: literal segments such as
`_history`, `_search`, `$validate` before `{id}`), the FhirError handler and the middleware
that makes every error under /fhir an OperationOutcome. Each module registers what it serves
in the `Registry`, from which /fhir/metadata is generated.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from ...usecases.fhir_errors import FhirError
from . import create, delete, history, metadata, read, search, transaction, update, vread
from .common import negotiate
from ..routing import GatedRouter
from .errors import OutcomeMiddleware, fhir_error_handler
from .operations import everything, export, validate
from .registry import Registry

PREFIX = "/fhir"

MODULES = (
    metadata.register,
    export.register,  # $export, Patient/$export, $export-status/{job}, $export-file/{job}/{file}: before {type}/{id}
    history.register_type,
    everything.register,
    history.register_instance,
    vread.register,
    search.register_get,
    search.register_post,
    validate.register,
    read.register,
    create.register,
    update.register,
    delete.register,
    transaction.register,
)
"""Registration functions in route-matching order (add an operation module here)."""


def fhir_router() -> tuple[APIRouter, Registry]:
    registry = Registry()
    from ..fhir_access import fhir_guard  # authentication, SMART scopes, tenancy (service/api/fhir_access.py)

    router = GatedRouter(gate=PREFIX, dependencies=[Depends(negotiate), Depends(fhir_guard)])  # mounted at PREFIX
    for register in MODULES:
        register(router, registry)
    return router, registry


def install_fhir_api(app: FastAPI) -> Registry:
    """Mount the FHIR API on `app` under /fhir; returns its registry."""
    router, registry = fhir_router()
    app.include_router(router, prefix=PREFIX)
    app.add_exception_handler(FhirError, fhir_error_handler)
    app.add_middleware(OutcomeMiddleware)
    app.state.fhir_registry = registry
    export.install(app)  # the bulk export runner thread starts and stops with the app
    return registry
