"""SMART discovery: the `/.well-known/smart-configuration` document and the CapabilityStatement
`rest.security` element (SMART App Launch 2.2.0, Backend Services; clinical-coding.md section 7).

This service is a *resource server*: it verifies tokens issued by the configured IdP, whose
token endpoint it advertises (`AUTH_TOKEN_ENDPOINT`; in dev mode a placeholder under the
reserved `.invalid` domain, since dev tokens are minted locally, not requested).
"""

from __future__ import annotations

from typing import Any

from service.auth.settings import AuthSettings

CAPABILITIES: tuple[str, ...] = ("client-confidential-asymmetric", "permission-v2", "permission-v1")
SIGNING_ALGS: tuple[str, ...] = ("RS384", "ES384")

SCOPES_SUPPORTED: tuple[str, ...] = (
    "system/*.rs",
    "system/*.cruds",
    "system/*.read",
    "system/*.write",
    "system/*.*",
    "user/*.rs",
    "user/*.cruds",
    "patient/*.rs",
    "system/Patient.rs",
    "system/Observation.rs",
    "system/Observation.crus",
    "system/QuestionnaireResponse.cru",
    "system/MedicationAdministration.cru",
    "system/Procedure.cru",
)
"""Advertised examples; any well-formed v1/v2 scope is understood (see `scopes.py`)."""

SECURITY_SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def smart_configuration(settings: AuthSettings) -> dict[str, Any]:
    """The JSON body of `GET [fhir-base]/.well-known/smart-configuration`."""
    document: dict[str, Any] = {
        "token_endpoint": settings.token_endpoint,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": list(CAPABILITIES),
        "code_challenge_methods_supported": ["S256"],
    }
    if settings.mode == "jwt" and settings.issuer:
        document["issuer"] = settings.issuer
    if settings.mode == "jwt" and settings.jwks_url:
        document["jwks_uri"] = settings.jwks_url
    return document


def capability_security(settings: AuthSettings) -> dict[str, Any]:
    """The CapabilityStatement `rest[0].security` element (FHIR R4 JSON)."""
    return {
        "service": [
            {
                "coding": [{"system": SECURITY_SERVICE_SYSTEM, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                "text": "OAuth2 bearer tokens using the SMART on FHIR Backend Services profile",
            }
        ],
        "extension": [
            {
                "url": OAUTH_URIS_EXTENSION,
                "extension": [{"url": "token", "valueUri": settings.token_endpoint}],
            }
        ],
        "description": (
            "Send `Authorization: Bearer <access token>` obtained from the token endpoint with the "
            "client_credentials grant and a private_key_jwt (RS384 or ES384) client assertion. "
            "SMART scopes v2 and v1 are accepted; see /.well-known/smart-configuration."
        ),
    }
