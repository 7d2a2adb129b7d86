"""The test suite, by layer (pytest.ini: testpaths = tests).

- tests/unit: rules and building blocks called directly (services, fan-out, settings, logging, commands).
- tests/ws: the WebSocket API in-process through the full ASGI stack (tests.ws: the client helper).
- tests/http: the HTTP API and pages through Django's and DRF's test clients.
- tests/live: real server processes over the network, browsers (tests.live: the live-server harness).
Shared by all: tests.factories (test data), tests.contract (AsyncAPI frame checker), conftest.py (fixtures),
tests.social (HTTP calls from async tests, private rooms, query counting: §7-§8 tests).
"""

from pathlib import Path

# The repository root, for tests that read or run project files.
ROOT = Path(__file__).resolve().parent.parent
