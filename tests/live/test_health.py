"""Liveness and readiness probes of a real server process, with its services up and with one of them down."""

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.live import LiveServer, run_servers

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# A probe must answer well within a load balancer's timeout even when a service hangs or is gone.
PROBE_DEADLINE_SECONDS = 10.0


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def probe(server: LiveServer, path: str) -> tuple[int, dict, float]:
    """GET a probe; returns its status, JSON body and how long it took."""
    started = time.monotonic()
    response = requests.get(f"{server.base_url}{path}", timeout=PROBE_DEADLINE_SECONDS)
    return response.status_code, response.json(), time.monotonic() - started


def test_healthz_and_readyz_answer_200_with_services_up() -> None:
    with run_servers(1) as (server,):
        assert probe(server, "/healthz")[:2] == (200, {"status": "ok"})
        status, body, _ = probe(server, "/readyz")
        assert (status, body) == (200, {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}})


def test_readyz_is_503_when_redis_is_unreachable() -> None:
    with closed_port() as port, run_servers(1, {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}) as (server,):
        status, body, elapsed = probe(server, "/readyz")
        assert status == 503, body
        assert body == {"status": "unavailable", "checks": {"database": "ok", "channel_layer": "unavailable"}}
        assert elapsed < PROBE_DEADLINE_SECONDS
        # Liveness is about the process, not its dependencies: restarting it would not help.
        assert probe(server, "/healthz")[:2] == (200, {"status": "ok"})


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    with closed_port() as port, run_servers(1, {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/chat"}) as (server,):
        status, body, elapsed = probe(server, "/readyz")
        assert status == 503, body
        assert body == {"status": "unavailable", "checks": {"database": "unavailable", "channel_layer": "ok"}}
        assert elapsed < PROBE_DEADLINE_SECONDS
        assert probe(server, "/healthz")[:2] == (200, {"status": "ok"})
