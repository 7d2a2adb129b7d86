"""Liveness and readiness probes for load balancers and orchestrators."""

import asyncio
import logging

from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)
READINESS_TIMEOUT_SECONDS = 2.0


async def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests."""
    return JsonResponse({"status": "ok"})


def _database_answers() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # a plain executor thread, not Django's: hand the connection back now


async def readyz(request: HttpRequest) -> JsonResponse:
    """The database and the channel layer both answer within a short timeout."""
    checks: dict[str, str] = {}
    probes = {
        # A plain executor thread, so that the timeout really abandons a hung check:
        # sync_to_async would wait for it (up to the pool's timeout) even when cancelled.
        "database": asyncio.get_running_loop().run_in_executor(None, _database_answers),
        # A send to an empty group is a round trip to Redis (or a no-op in memory).
        "channel_layer": get_channel_layer().group_send("readyz", {"type": "readyz.probe"}),
    }
    for name, probe in probes.items():
        try:
            await asyncio.wait_for(probe, READINESS_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            logger.warning("readiness check %s failed: %r", name, exc)
            checks[name] = "unavailable"
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
