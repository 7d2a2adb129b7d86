"""What one chat connection holds across its topics (rooms, presence, messages), and its session.

`ConsumerMixin` is the base of the topic mixins (chat/ws/rooms.py, presence.py,
messages.py...): to the type checker it is a ChatConnection, so `self.reply`,
`self.user` and the state below check; at run time it is a plain class whose
actions DCRF's metaclass collects (via dir()) from RoomConsumer's bases.
"""

from typing import TYPE_CHECKING, Any

from django.conf import settings

from chat.core import services
from chat.core.db import db_thread
from chat.core.serializers import user_json
from chat.events import groups, realtime
from chat.ws import auth, handshake
from chat.ws.protocol import CLOSE_AUTH_REVOKED, ProtocolConsumer
from chat.ws.streams import MessageStream

# Made once: building the sync-to-async wrapper per call cost a few percent of a join.
_connection_open = db_thread(services.connection_open)
_connection_open_by_token = db_thread(services.connection_open_by_token)


class ChatConnection(ProtocolConsumer):
    """The protocol consumer plus the chat's per-connection state and session (presence row, user group)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Dicts used as ordered sets: an empty dict is a third of an empty set's size, and
        # most of 10,000 idle connections never fill these.
        self.present_rooms: dict[int, None] = {}
        self.last_joined_room: int | None = None
        self.message_streams: dict[tuple[int, Any], MessageStream] = {}
        # Subscription -> the DCRF stream it was made through (None: unwrapped), which its pushes go in.
        self.instance_subscriptions: dict[tuple[int, Any], str | None] = {}
        self.online_users_request_ids: dict[Any, str | None] = {}
        self.went_online = False
        self.connection_recorded = False

    async def authenticate(self) -> Any:
        if not self.scope.pop(auth.TOKEN_UNCHECKED, False):
            return await super().authenticate()
        # The token is checked in the round trip that records the connection (one thread hop
        # and one statement for both, where a handshake used to cost two of each).
        realtime.register(self)  # before the row exists, so no heartbeat takes it for a ghost
        try:
            user, self.went_online = await _connection_open_by_token(
                key=self.scope["auth_token"],
                channel_name=self.channel_name,
                server_id=realtime.SERVER_ID,
                max_per_user=int(settings.CHAT_MAX_CONNECTIONS_PER_USER),
            )
        except BaseException:
            realtime.unregister(self)  # nothing was recorded: the statement failed as a whole
            raise
        if user is None:
            realtime.unregister(self)
            return None
        self.scope["user"] = user
        self.connection_recorded = True
        return user

    async def open_session(self) -> None:
        await super().open_session()
        if not self.connection_recorded:
            realtime.register(self)  # before the row exists, so no heartbeat takes it for a ghost
            self.went_online = await _connection_open(
                channel_name=self.channel_name,
                user=self.user,
                server_id=realtime.SERVER_ID,
                max_per_user=int(settings.CHAT_MAX_CONNECTIONS_PER_USER),
            )
        await self.add_group(groups.user_group(self.user.pk))

    async def abort_session(self, exc: Exception) -> None:
        await super().abort_session(exc)
        await handshake.abort(self, exc)

    async def session_opened(self) -> None:
        await super().session_opened()
        # The handshake's headers (origin, token, cookies) served the handshake; nothing reads
        # them later, and kept they cost ~1 KB of every idle connection (daphne shares the list).
        headers = self.scope.get("headers")
        if isinstance(headers, list):
            headers.clear()
        realtime.ensure_heartbeat()
        if self.went_online:
            await realtime.push_user_status([user_json(self.user)], online=True)

    async def close_session(self) -> None:
        await super().close_session()
        # No longer held before its rows are deleted: a heartbeat taking its snapshot in between
        # would find the rows gone and write them back (realtime.RowGate).
        realtime.unregister(self)
        try:
            await realtime.forget_connection(self.channel_name)
        finally:
            # A stream refers back to this consumer (its push, detach, close): ended and dropped, the
            # closed connection is freed by reference counting, not left to the collector's full passes.
            for stream in self.message_streams.values():
                stream.end()
            self.message_streams.clear()

    async def sync_room_group(self, room_id: int) -> None:
        """Be in the room's presence/typing audience exactly while present or subscribed to its messages."""
        if room_id in self.present_rooms or any(room == room_id for room, _ in self.message_streams):
            await self.add_group(groups.room_group(room_id))
        else:
            await self.remove_group(groups.room_group(room_id))

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """Layer events of type groups.AUTH_REVOKED_EVENT: close if this connection's credentials were revoked."""
        if event["token"] is None or event["token"] == self.scope.get("auth_token"):
            await self.close(code=CLOSE_AUTH_REVOKED)


if TYPE_CHECKING:
    ConsumerMixin = ChatConnection
else:
    ConsumerMixin = object
