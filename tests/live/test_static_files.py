"""Static files in production: WhiteNoise serves collectstatic's hashed, compressed files with far-future caching, no flag needed."""

import gzip
import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.live import PYTHON, ROOT, run_servers, service_env

pytestmark = pytest.mark.live

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-for-the-static-test-" + "x" * 20,
    "ALLOWED_HOSTS": "127.0.0.1",
    # Plain HTTP on loopback: no TLS proxy in front of this test server.
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
}


def test_a_production_server_serves_hashed_static_files_with_long_cache_headers(transactional_db: None, tmp_path: Path) -> None:
    env = {**service_env(), **PRODUCTION, "STATIC_ROOT": str(tmp_path / "static")}
    collected = subprocess.run([PYTHON, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert collected.returncode == 0, collected.stderr
    with run_servers(1, {**PRODUCTION, "STATIC_ROOT": str(tmp_path / "static")}) as (server,):
        page = requests.get(f"{server.base_url}/accounts/login/", timeout=10)
        assert page.status_code == 200, page.text[:2000]
        hashed = re.search(r'href="(/static/chat/chat\.[0-9a-f]{12}\.css)"', page.text)
        assert hashed, "the page should link the hashed name of chat.css"
        response = requests.get(f"{server.base_url}{hashed.group(1)}", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
        max_age = int(re.search(r"max-age=(\d+)", response.headers["Cache-Control"]).group(1))  # type: ignore[union-attr]
        assert max_age >= 365 * 24 * 3600
        css = gzip.decompress(response.raw.read()).decode()
        assert css == (ROOT / "chat" / "static" / "chat" / "chat.css").read_text()
        # The unhashed name still works, but may change: short caching only.
        plain = requests.get(f"{server.base_url}/static/chat/chat.css", timeout=10)
        assert plain.status_code == 200 and "immutable" not in plain.headers.get("Cache-Control", "")
        assert requests.get(f"{server.base_url}/static/chat/nothing.css", timeout=10).status_code == 404


def test_a_development_server_serves_the_app_files_without_collectstatic(transactional_db: None) -> None:
    with run_servers(1, {"STATIC_ROOT": "/nonexistent-static-root"}) as (server,):
        response = requests.get(f"{server.base_url}/static/chat/chat.css", timeout=10)
        assert response.status_code == 200
        assert response.text == (ROOT / "chat" / "static" / "chat" / "chat.css").read_text()
