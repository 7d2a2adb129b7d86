"""Property-based run of the live HTTP API against its own OpenAPI schema (schemathesis).

Every operation of /api/schema/ gets a bounded number of generated requests, sent
with a real API token to a real daphne process; no response may be a 500, and each
must match the schema (documented status code, content type and body).
"""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.live import LiveServer, run_servers

pytestmark = pytest.mark.live

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 25


@pytest.fixture
def server(transactional_db: None) -> Iterator[LiveServer]:
    """A daphne process on the test database (emptied again after the test, by transactional_db)."""
    # A high flood limit, so generated POSTs exercise the endpoint and not only its 429.
    with run_servers(1, {"CHAT_MESSAGE_RATE_LIMIT": "100000"}) as (live,):
        yield live


@pytest.fixture
def token(server: LiveServer) -> str:
    """A registered user's API token; the user hosts a room with a message, so small ids often exist."""
    credentials = {"username": f"fuzz-{uuid.uuid4().hex[:8]}", "password": "a long enough pass phrase"}
    registered = requests.post(f"{server.base_url}/api/auth/register/", json=credentials, timeout=10)
    assert registered.status_code == 201, server.output()[-4000:]
    key = requests.post(f"{server.base_url}/api/auth/token/", json=credentials, timeout=10).json()["token"]
    headers = {"Authorization": f"Token {key}"}
    room = requests.post(f"{server.base_url}/api/rooms/", json={"name": "fuzz"}, headers=headers, timeout=10).json()
    posted = requests.post(f"{server.base_url}/api/rooms/{room['pk']}/messages/", json={"text": "hi"}, headers=headers, timeout=10)
    assert posted.status_code == 201, posted.text
    return key


def test_http_api_matches_its_openapi_schema(server: LiveServer, token: str) -> None:
    # schemathesis's own pytest plugin reads pytest internals that pytest 9 removed, so the
    # operations are driven through its Python API: one bounded Hypothesis run per operation.
    api_schema = schemathesis.openapi.from_url(f"{server.base_url}/api/schema/?format=json")
    headers = {"Authorization": f"Token {token}"}
    failures: dict[str, str] = {}
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) >= 14, [operation.label for operation in operations]
    # Logging out revokes the run's token: last, so every other operation runs authenticated.
    operations.sort(key=lambda operation: operation.label == "POST /api/auth/logout/")

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,  # the same examples on every run, so a CI failure reproduces
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(base_url=server.base_url, headers=headers, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (report every operation's failures at once)
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    assert not failures, "\n\n".join(f"{label}\n{report}" for label, report in failures.items()) + "\n" + server.output()[-2000:]
