"""The FastAPI dependency and error mapping, through a real app and TestClient."""

from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from service.auth.dev import mint_dev_token
from service.auth.fastapi import action_dependency, install_auth_error_handler, principal_dependency
from service.auth.roles import Action
from service.auth.settings import AuthSettings
from service.auth.tokens import Principal


@pytest.fixture
def settings(tmp_path: Path) -> AuthSettings:
    return AuthSettings(mode="dev", environment="development", dev_key_dir=tmp_path / "dev-keys")


def build_app(settings: AuthSettings) -> FastAPI:
    app = FastAPI()
    install_auth_error_handler(app)
    current = principal_dependency(settings)

    @app.get("/fhir/Observation")
    def search(principal: Annotated[Principal, Depends(current)]) -> dict[str, str | None]:
        principal.require("Observation", "search")
        return {"subject": principal.subject, "clinic": principal.clinic_id}

    @app.get("/coverage", dependencies=[Depends(action_dependency(current, Action.COVERAGE_READ))])
    def coverage() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def client(settings: AuthSettings) -> TestClient:
    return TestClient(build_app(settings))


def test_valid_token(client: TestClient, settings: AuthSettings) -> None:
    token = mint_dev_token("system/Observation.rs", clinic="clinic-north", settings=settings)
    response = client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"subject": "dev-client", "clinic": "clinic-north"}


def test_missing_token_is_401(client: TestClient) -> None:
    response = client.get("/fhir/Observation")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("authorization", ["Bearer not.a.jwt", "Bearer abc", "Basic dXNlcjpwYXNz"])
def test_invalid_token_is_401_invalid_token(client: TestClient, authorization: str) -> None:
    response = client.get("/fhir/Observation", headers={"Authorization": authorization})
    assert response.status_code == 401
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer") and ("invalid_token" in header or authorization.startswith("Basic"))


def test_insufficient_scope_is_403(client: TestClient, settings: AuthSettings) -> None:
    token = mint_dev_token("system/Patient.rs", settings=settings)
    response = client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert response.json()["issue"][0]["code"] == "forbidden"


def test_role_dependency(client: TestClient, settings: AuthSettings) -> None:
    ehr = mint_dev_token("system/*.rs", roles=["ehr-system"], settings=settings)
    billing = mint_dev_token("system/*.rs", roles=["billing"], settings=settings)
    assert client.get("/coverage", headers={"Authorization": f"Bearer {ehr}"}).status_code == 403
    assert client.get("/coverage", headers={"Authorization": f"Bearer {billing}"}).status_code == 200


def test_disabled_mode_needs_no_token() -> None:
    client = TestClient(build_app(AuthSettings(mode="disabled", environment="development")))
    assert client.get("/fhir/Observation").status_code == 200
