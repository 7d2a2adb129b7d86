"""Production configuration: `check --deploy` passes, HTTPS behind a proxy, CORS for SPA origins, CSRF."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.middleware.csrf import get_token
from django.test import Client, override_settings
from rest_framework.test import APIClient

from chat.models import User
from tests import ROOT
from tests.conftest import client_for

SPA = "https://app.example.com"


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process: DEBUG off, a real secret, named hosts."""
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}}
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="chat.example.com",
        CORS_ALLOWED_ORIGINS=f"{SPA},https://admin.example.com",
    )
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_in_production_configuration() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_check_deploy_flags_an_insecure_override() -> None:
    # The check is not vacuous: turning a production default off is reported.
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(SESSION_COOKIE_SECURE="false"))
    assert result.returncode != 0
    assert "security.W012" in result.stdout + result.stderr


def test_production_refuses_the_development_secret_key() -> None:
    env = production_env()
    del env["SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_defaults_from_environment() -> None:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k) for k in ["
        "'DEBUG', 'SECURE_SSL_REDIRECT', 'SECURE_PROXY_SSL_HEADER', 'SECURE_HSTS_SECONDS', "
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'CORS_ALLOWED_ORIGINS', 'ALLOWED_HOSTS']}))"
    )
    result = manage("shell", "-c", code, env=production_env())
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_HSTS_SECONDS": 31536000,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "CORS_ALLOWED_ORIGINS": [SPA, "https://admin.example.com"],
        "ALLOWED_HOSTS": ["chat.example.com"],
    }


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), SECURE_HSTS_SECONDS=3600)
def test_https_behind_proxy_redirects_plain_http_but_not_probes() -> None:
    client = Client()
    plain = client.get("/api/rooms/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://"), plain
    proxied = client.get("/api/rooms/", headers={"X-Forwarded-Proto": "https"})
    assert proxied.status_code in (401, 403), proxied  # served (not redirected); anonymous
    assert proxied["Strict-Transport-Security"].startswith("max-age=3600")
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
@override_settings(CORS_ALLOWED_ORIGINS=[SPA])
def test_cors_preflight_from_allowed_origin_gets_headers() -> None:
    response = Client().options(
        "/api/rooms/",
        headers={"Origin": SPA, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"},
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SPA
    allowed_headers = response["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "POST" in response["Access-Control-Allow-Methods"]


@pytest.mark.django_db
@override_settings(CORS_ALLOWED_ORIGINS=[SPA])
def test_cors_preflight_from_other_origin_gets_no_headers() -> None:
    response = Client().options("/api/rooms/", headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Methods" not in response


@pytest.mark.django_db
@override_settings(CORS_ALLOWED_ORIGINS=[SPA])
def test_cors_actual_request_from_allowed_origin_is_readable(user: User) -> None:
    api = client_for(user)
    allowed = api.get("/api/users/me/", headers={"Origin": SPA})
    assert allowed.status_code == 200 and allowed["Access-Control-Allow-Origin"] == SPA
    other = api.get("/api/users/me/", headers={"Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.django_db
def test_session_requests_need_csrf_token_but_token_requests_do_not(user: User) -> None:
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.post("/api/rooms/", {"name": "no-csrf"}, format="json")
    assert refused.status_code == 403, refused.content
    assert "csrf" in refused.json()["detail"].lower()

    # The same session with the CSRF cookie and header, as a same-origin SPA sends them.
    csrf = get_csrf_token(browser)
    accepted = browser.post("/api/rooms/", {"name": "with-csrf"}, format="json", headers={"X-CSRFToken": csrf})
    assert accepted.status_code == 201, accepted.content

    token_client = client_for(user)
    token_client.handler.enforce_csrf_checks = True
    created = token_client.post("/api/rooms/", {"name": "token-auth"}, format="json")
    assert created.status_code == 201, created.content


def get_csrf_token(client: APIClient) -> str:
    """Set a CSRF cookie on the client, as Django's `get_token` does for a page, and return its value."""
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    return token
