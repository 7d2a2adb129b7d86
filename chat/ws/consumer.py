"""The WebSocket room API (api_docs/PROTOCOL.md §2): one consumer composed of topic mixins.

- chat/ws/protocol.py: the envelope and every Channels/DCRF/daphne override;
- chat/ws/connection.py: the connection's state and session (presence row, user group);
- chat/ws/rooms.py, presence.py, messages.py, social.py (replies, reactions, search): the actions, one mixin per topic;
- chat/ws/private_rooms.py, inbox.py: §5-§6 (direct rooms, members, moderation; read state,
  the inbox, and how access changes reach a connection).

Request/response actions are sync DCRF actions (run on a worker thread through
`chat.core.db.db_action`) that validate parameters with the shared serializers, call one
service or selector and return serialized data. Actions that also subscribe to groups
or push events are async and reach the database only through `chat.core.db.db_thread`.
Events reach the consumer through its process's fan-out (`chat.events.fanout`), never through
a layer channel of its own.
"""

from chat.core.serializers import RoomSerializer
from chat.ws.connection import ChatConnection
from chat.ws.inbox import InboxMixin
from chat.ws.messages import MessagesMixin
from chat.ws.presence import PresenceMixin
from chat.ws.private_rooms import PrivateRoomsMixin
from chat.ws.protocol import CLOSE_AUTH_REVOKED, CLOSE_INTERNAL_ERROR
from chat.ws.rooms import RoomsMixin
from chat.ws.social import SocialActionsMixin

# The close codes this consumer sends, importable from here as before the split.
__all__ = ["CLOSE_AUTH_REVOKED", "CLOSE_INTERNAL_ERROR", "RoomConsumer"]


class RoomConsumer(
    InboxMixin,
    PrivateRoomsMixin,
    RoomsMixin,
    PresenceMixin,
    MessagesMixin,
    SocialActionsMixin,
    ChatConnection,
):
    """One authenticated connection: any number of rooms, subscriptions and presences."""

    serializer_class = RoomSerializer
