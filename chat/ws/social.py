"""WebSocket actions of api_docs/PROTOCOL.md §7: reactions and message search (replies ride on create_message)."""

from typing import Any

from chat.core import selectors, services
from chat.core.db import db_action
from chat.core.serializers import MessageSearchParamsSerializer, MessageSerializer, ReactionParamsSerializer, serialize_many, validate
from chat.ws.connection import ConsumerMixin
from chat.ws.protocol import Status


class SocialActionsMixin(ConsumerMixin):
    """add_reaction, remove_reaction and search_messages."""

    @db_action()
    def add_reaction(self, **params: Any) -> Status:
        """React to a message: 201 with the message, or 200 when this reaction was already there."""
        query = validate(ReactionParamsSerializer, params)
        message, created = services.reaction_add(message_id=query["pk"], user=self.user, emoji=query["emoji"])
        return MessageSerializer(message).data, 201 if created else 200

    @db_action()
    def remove_reaction(self, **params: Any) -> Status:
        """Take back a reaction: 200 with the message, 404 if there was none."""
        query = validate(ReactionParamsSerializer, params)
        message = services.reaction_remove(message_id=query["pk"], user=self.user, emoji=query["emoji"])
        return MessageSerializer(message).data, 200

    @db_action()
    def search_messages(self, **params: Any) -> Status:
        """Messages the caller can see whose text matches the query, newest first."""
        query = validate(MessageSearchParamsSerializer, params)
        messages, has_more = selectors.message_search(
            user=self.user, query=query["query"], room_id=query.get("pk"), limit=query["limit"], before_id=query.get("before_id")
        )
        return {"results": serialize_many(MessageSerializer, messages), "has_more": has_more}, 200
