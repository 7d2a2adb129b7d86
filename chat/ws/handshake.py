"""Undoing a WebSocket handshake that failed half-way (issue 15, finding 2), and telling the client why.

A handshake that fails after its Connection row is written must not leave a ghost
online user behind: the row is deleted again, and if even that fails the heartbeat
removes it, since the consumer is no longer held (chat/events/realtime.py).
"""

import logging
from typing import Any

from chat.core import services
from chat.core.db import db_thread
from chat.core.exceptions import TooManyConnections
from chat.events import realtime
from chat.ops import metrics

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY_CONNECTIONS = 4429
# "Try again later": the database or Redis did not answer during the handshake.
CLOSE_TRY_AGAIN_LATER = 1013


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
