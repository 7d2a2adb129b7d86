"""The PostgreSQL pool retries a lost connection every second, not after 1, 2, 4, 8... s (chat.core.db)."""

import pytest
from django.conf import settings


def test_pool_retries_lost_connections_at_a_steady_interval() -> None:
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("only the PostgreSQL pool backs off")
    from psycopg_pool.base import AttemptWithBackoff  # the seam chat.core.db relies on

    attempt = AttemptWithBackoff(timeout=60)
    delays = []
    for now in range(6):
        attempt.update_delay(float(now))
        delays.append(attempt.delay)
    assert all(0.85 <= delay <= 1.15 for delay in delays), delays
