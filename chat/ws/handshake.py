"""The WebSocket handshake's bookkeeping: record the connection, join the user's group, accept; undo on any failure.

A handshake that fails after its Connection row is written must not leave a ghost
online user behind (issue 15, finding 2): the row is deleted again, and if even
that fails the heartbeat removes it, since the consumer is no longer held.
"""

import logging
from typing import Any

from django.conf import settings

from chat.core import services
from chat.core.db import db_thread
from chat.core.exceptions import TooManyConnections
from chat.events import groups, realtime
from chat.ops import metrics

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY_CONNECTIONS = 4429
# "Try again later": the database or Redis did not answer during the handshake.
CLOSE_TRY_AGAIN_LATER = 1013


async def open_connection(consumer: Any) -> bool | None:
    """Record, subscribe and accept the consumer's connection: whether the user came online, or None when it was closed."""
    user = consumer.user
    realtime.register(consumer)  # before the row exists, so no heartbeat takes it for a ghost
    try:
        went_online = await db_thread(services.connection_open)(
            channel_name=consumer.channel_name,
            user=user,
            server_id=realtime.SERVER_ID,
            max_per_user=settings.CHAT_MAX_CONNECTIONS_PER_USER,
        )
    except TooManyConnections:
        realtime.unregister(consumer)
        metrics.rate_limited("connections_per_user")
        await _refuse(consumer, CLOSE_TOO_MANY_CONNECTIONS)
        return None
    except Exception:
        realtime.unregister(consumer)
        logger.exception("handshake of user %s failed before its connection was recorded", user.pk)
        await _refuse(consumer, CLOSE_TRY_AGAIN_LATER)
        return None
    try:
        await consumer.add_group(groups.user_group(user.pk))
        await consumer.accept()
    except Exception:
        logger.exception("handshake of user %s failed after its connection was recorded: undoing it", user.pk)
        await _undo(consumer)
        await _refuse(consumer, CLOSE_TRY_AGAIN_LATER)
        return None
    return bool(went_online)


async def _undo(consumer: Any) -> None:
    realtime.unregister(consumer)
    for name in list(consumer.groups):
        try:
            await consumer.remove_group(name)
        except Exception:
            logger.warning("could not leave group %s while undoing a handshake", name)
    try:
        await db_thread(services.connections_close)(channel_names=[consumer.channel_name])
    except Exception:  # the heartbeat removes rows of this process that no consumer holds
        logger.warning("could not delete the connection row of a failed handshake")


async def _refuse(consumer: Any, code: int) -> None:
    """Accept and close at once with `code`, so the client learns why (a refusal before accept is a bare 403)."""
    metrics.connection_refused(code)
    try:
        await consumer.accept()
        await consumer.close(code=code)
    except Exception:
        logger.warning("could not close a refused handshake with %d", code)
