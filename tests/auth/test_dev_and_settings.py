"""Settings consistency rules, dev tokens (round trip, production refusal) and SMART discovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from service.auth.dev import DevTokenRefusedError, mint_dev_token
from service.auth.errors import AuthError
from service.auth.settings import DEV_AUDIENCE, DEV_ISSUER, AuthSettings
from service.auth.smart_configuration import capability_security, smart_configuration
from service.auth.tokens import validate_token

JWT: dict[str, Any] = {
    "mode": "jwt",
    "issuer": "https://idp.example.org",
    "audience": "https://fhir.example.org/fhir",
    "token_endpoint": "https://idp.example.org/token",
    "jwks_url": "https://idp.example.org/jwks",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SERVICE_ENV", "AUTH_MODE", "AUTH_ENVIRONMENT", "AUTH_ISSUER", "AUTH_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


@pytest.fixture
def dev_settings(tmp_path: Path) -> AuthSettings:
    return AuthSettings(mode="dev", environment="development", dev_key_dir=tmp_path / "dev-keys")


# --------------------------------------------------------------------------- settings


def test_dev_mode_defaults_to_local_values() -> None:
    settings = AuthSettings()
    assert (settings.mode, settings.environment) == ("dev", "development")
    assert settings.issuer == DEV_ISSUER and settings.audience == (DEV_AUDIENCE,)
    assert settings.clock_skew_seconds == 60
    assert settings.dev_key_dir.parts[-2:] == (".local", "dev-keys")


def test_environment_comes_from_service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_ENV", "production")
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_ISSUER", JWT["issuer"])
    monkeypatch.setenv("AUTH_AUDIENCE", "https://a.example/fhir, https://b.example/fhir")
    monkeypatch.setenv("AUTH_TOKEN_ENDPOINT", JWT["token_endpoint"])
    monkeypatch.setenv("AUTH_JWKS_URL", JWT["jwks_url"])
    settings = AuthSettings()
    assert settings.is_production
    assert settings.audience == ("https://a.example/fhir", "https://b.example/fhir")


@pytest.mark.parametrize("mode", ["disabled", "dev"])
def test_production_refuses_unsafe_modes(mode: Any) -> None:
    with pytest.raises(ValidationError):
        AuthSettings(mode=mode, environment="production")


def test_disabled_mode_is_allowed_in_development() -> None:
    assert AuthSettings(mode="disabled", environment="development").mode == "disabled"


def test_jwt_mode_requires_its_configuration() -> None:
    with pytest.raises(ValidationError, match="AUTH_ISSUER"):
        AuthSettings(mode="jwt", environment="development")
    with pytest.raises(ValidationError, match="https"):
        AuthSettings(**{**JWT, "jwks_url": "http://idp.example.org/jwks"}, environment="production")
    assert AuthSettings(**JWT, environment="production").is_production


def test_validation_in_disabled_mode_is_refused() -> None:
    with pytest.raises(AuthError) as caught:
        validate_token("a.b.c", AuthSettings(mode="disabled", environment="development"))
    assert caught.value.status == 503


# --------------------------------------------------------------------------- dev tokens


def test_dev_token_round_trip(dev_settings: AuthSettings) -> None:
    token = mint_dev_token(
        "patient/*.rs", clinic="clinic-north", patient="pat-7", roles=["clinician"], settings=dev_settings
    )
    principal = validate_token(token, dev_settings)
    assert principal.clinic_id == "clinic-north"
    assert principal.patient_id == "pat-7" and principal.confined_to_patient
    assert principal.roles == {"clinician"}
    assert principal.scopes.allows("Observation", "read")
    assert (dev_settings.dev_key_dir / "dev-jwks.json").exists()


def test_dev_token_header_is_rs384_with_kid(dev_settings: AuthSettings) -> None:
    import base64
    import json

    token = mint_dev_token("system/*.rs", settings=dev_settings)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS384" and header["kid"]


def test_dev_token_expires(dev_settings: AuthSettings) -> None:
    token = mint_dev_token("system/*.rs", lifetime=60, settings=dev_settings, now=1_800_000_000)
    assert validate_token(token, dev_settings, now=1_800_000_000 + 30)
    with pytest.raises(AuthError) as caught:
        validate_token(token, dev_settings, now=1_800_000_000 + 60 + dev_settings.clock_skew_seconds)
    assert caught.value.code == "token_expired"


def test_dev_token_refused_in_production(tmp_path: Path) -> None:
    production = AuthSettings(**JWT, environment="production", dev_key_dir=tmp_path / "dev-keys")
    with pytest.raises(DevTokenRefusedError):
        mint_dev_token("system/*.rs", settings=production)
    # even settings that skipped validation are refused
    forced = AuthSettings.model_construct(mode="dev", environment="production", dev_key_dir=tmp_path / "dev-keys")
    with pytest.raises(DevTokenRefusedError):
        mint_dev_token("system/*.rs", settings=forced)
    assert not (tmp_path / "dev-keys").exists()  # no key material was created either


def test_dev_token_rejects_bad_arguments(dev_settings: AuthSettings) -> None:
    with pytest.raises(ValueError):
        mint_dev_token("system/*.rs", roles=["root"], settings=dev_settings)
    with pytest.raises(ValueError):
        mint_dev_token("system/*.rs", lifetime=0, settings=dev_settings)


def test_dev_token_is_rejected_by_a_jwt_mode_server(dev_settings: AuthSettings, tmp_path: Path) -> None:
    """A dev token is no use against a real-IdP deployment (other issuer, other keys)."""
    import json

    token = mint_dev_token("system/*.rs", settings=dev_settings)
    other = tmp_path / "idp.json"
    other.write_text(json.dumps({"keys": []}))
    real = AuthSettings(**{**JWT, "jwks_url": None, "jwks_file": other}, environment="development")
    with pytest.raises(AuthError) as caught:
        validate_token(token, real)
    assert caught.value.status == 401


# --------------------------------------------------------------------------- discovery


def test_smart_configuration_document() -> None:
    settings = AuthSettings(**JWT, environment="development")
    document = smart_configuration(settings)
    assert document["token_endpoint"] == "https://idp.example.org/token"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert document["capabilities"] == ["client-confidential-asymmetric", "permission-v2", "permission-v1"]
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "system/*.rs" in document["scopes_supported"]
    assert document["issuer"] == JWT["issuer"] and document["jwks_uri"] == JWT["jwks_url"]


def test_smart_configuration_in_dev_mode_has_a_placeholder_endpoint(dev_settings: AuthSettings) -> None:
    document = smart_configuration(dev_settings)
    assert document["token_endpoint"].startswith("https://") and ".invalid" in document["token_endpoint"]
    assert "issuer" not in document


def test_capability_statement_security() -> None:
    security = capability_security(AuthSettings(**JWT, environment="development"))
    (service,) = security["service"]
    assert service["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR",
        }
    ]
    (oauth,) = security["extension"]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert oauth["extension"] == [{"url": "token", "valueUri": "https://idp.example.org/token"}]
