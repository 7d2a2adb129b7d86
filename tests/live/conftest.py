"""Fixtures of the live tests."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.live import LiveServer, run_servers


@pytest.fixture(scope="module")
def pair(django_db_setup: None, django_db_blocker: Any) -> Iterator[list[LiveServer]]:
    """Two live server processes sharing this run's database and Redis, for a test module."""
    with django_db_blocker.unblock(), run_servers(2) as servers:
        yield servers
