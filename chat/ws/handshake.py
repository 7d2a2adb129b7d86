"""Undoing a WebSocket handshake that failed half-way (issue 15, finding 2), and telling the client why.

A handshake that fails after its Connection row is written must not leave a ghost
online user behind: the row is deleted again, and if even that fails the heartbeat
removes it, since the consumer is no longer held (chat/events/realtime.py).
"""

import logging
from typing import Any

from chat.core import services
from chat.core.db import db_thread
from chat.core.exceptions import TooManyConnections, is_outage
from chat.events import realtime
from chat.ops import metrics

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY_CONNECTIONS = 4429
# The database or Redis did not answer during the handshake: try again later. An
# application code (like HTTP's 503): autobahn lets a server send only 1000 and 3000-4999.
CLOSE_TRY_AGAIN_LATER = 4503


async def abort(consumer: Any, exc: Exception) -> None:
    """Undo a failed session opening (registry, groups, Connection row) and close the handshake with a code saying why."""
    realtime.unregister(consumer)
    if isinstance(exc, TooManyConnections):
        metrics.rate_limited("connections_per_user")
        await _refuse(consumer, CLOSE_TOO_MANY_CONNECTIONS)
        return
    logger.error("handshake of user %s failed: undoing it", consumer.user.pk, exc_info=exc)
    for name in list(consumer.groups):
        try:
            await consumer.remove_group(name)
        except Exception:
            logger.warning("could not leave group %s while undoing a handshake", name)
    try:
        await db_thread(services.connections_close)(channel_names=[consumer.channel_name])
    except Exception:  # the heartbeat removes rows of this process that no consumer holds
        logger.warning("could not delete the connection row of a failed handshake")
    await _refuse(consumer, CLOSE_TRY_AGAIN_LATER)


async def _refuse(consumer: Any, code: int) -> None:
    """Accept and close at once with `code`, so the client learns why (a refusal before accept is a bare 403)."""
    metrics.connection_refused(code)
    try:
        await consumer.accept()
        await consumer.close(code=code)
    except Exception:
        logger.warning("could not close a refused handshake with %d", code)


class OutageGuard:
    """Outermost WebSocket middleware: a handshake whose authentication finds PostgreSQL or Redis down is closed with 4503.

    Without it the exception escapes the application and daphne answers the handshake
    with HTTP 500. Failures after authentication are the consumer's (open_session's undo).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        try:
            return await self.inner(scope, receive, send)
        except Exception as exc:
            if not is_outage(exc):
                raise
            logger.warning("handshake refused, a backing service is unavailable: %r", exc)
            metrics.service_unavailable("ws")
            metrics.connection_refused(CLOSE_TRY_AGAIN_LATER)
            try:
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
            except Exception:  # the connection was already answered or is gone
                logger.warning("could not close the handshake with %d", CLOSE_TRY_AGAIN_LATER, exc_info=True)
            return None
