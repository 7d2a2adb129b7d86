"""WebSocket actions of api_docs/PROTOCOL.md §7: reactions and message search (replies ride on create_message)."""

from typing import Any

from chat.core import operations
from chat.core.db import db_action
from chat.core.serializers import MessageSearchParamsSerializer, ReactionParamsSerializer, validate
from chat.ws.connection import ConsumerMixin
from chat.ws.protocol import Status


class SocialActionsMixin(ConsumerMixin):
    """add_reaction, remove_reaction and search_messages."""

    @db_action()
    def add_reaction(self, **params: Any) -> Status:
        """React to a message: 201 with the message, or 200 when this reaction was already there."""
        message_id = validate(ReactionParamsSerializer, params)["pk"]
        return operations.reaction_change(user=self.user, message_id=message_id, params=params, add=True)

    @db_action()
    def remove_reaction(self, **params: Any) -> Status:
        """Take back a reaction: 200 with the message, 404 if there was none."""
        message_id = validate(ReactionParamsSerializer, params)["pk"]
        return operations.reaction_change(user=self.user, message_id=message_id, params=params, add=False)

    @db_action()
    def search_messages(self, **params: Any) -> Status:
        """Messages the caller can see whose text matches the query, newest first."""
        query = validate(MessageSearchParamsSerializer, params)
        page = operations.message_search_page(
            user=self.user, query=query["query"], room_id=query.get("pk"), limit=query["limit"], before_id=query.get("before_id")
        )
        return page, 200
