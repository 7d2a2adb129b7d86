"""Model observers: DCRF's signal-to-layer machinery, with identities and group names of our own.

DCRF derives an observer's identity (`_stable_observer_id`) and its group names from
the module and name of the decorated consumer method, so events only existed in a
process that had imported the consumer, and renaming or moving the consumer renamed
every group. Observers here are module-level objects (chat.events.streams) whose
identity is their pinned layer event type and whose groups are chat.events.groups names.
"""

import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from channels.layers import get_channel_layer
from django.db.models import Model
from django.db.models.signals import post_init
from djangochannelsrestframework.observer.model_observer import Action, ModelObserver

from chat.core.db import await_after_thread, on_commit
from chat.ops import metrics

logger = logging.getLogger(__name__)

# The room whose messages are being deleted along with it: no per-message events then,
# since the room's own `delete` event says it all and a big room would flood the layer.
_room_being_deleted: contextvars.ContextVar[int | None] = contextvars.ContextVar("room_being_deleted", default=None)


@contextlib.contextmanager
def room_deletion(room_id: int) -> Iterator[None]:
    """Silence per-message events while a room and its messages are deleted."""
    reset = _room_being_deleted.set(room_id)
    try:
        yield
    finally:
        _room_being_deleted.reset(reset)


class FanoutObserver(ModelObserver):
    """A model observer publishing one pinned event type to per-room groups after commit.

    Each event is serialized once, in the writing process, and stamped with its commit
    time. A failed group send must not turn a committed write into an error response:
    the database is the truth, and subscribers recover through after_seq.
    """

    def __init__(
        self,
        model_cls: type[Model],
        *,
        event_type: str,
        serialize: Callable[[Any, Action], dict[str, Any]],
        instance_group: Callable[[Any], str],
        room_group: Callable[[int], str],
    ) -> None:
        self.event_type = event_type
        self.serialize_body = serialize
        self.instance_group = instance_group
        self.room_group = room_group
        # Connects the model's signals (the model_cls setter): from here on every save publishes.
        super().__init__(serialize, model_cls=model_cls)
        # DCRF records every loaded instance's groups (post_init), to tell an update from a
        # move between groups when it is saved. Ours are functions of ids that never change
        # (a message's room, a room's pk), so prepare_messages derives them when needed;
        # recording them cost a fifth of the server's CPU when 2,000 clients caught up on
        # history at once (bench's reconnect storm).
        post_init.disconnect(self.post_init_receiver, sender=model_cls, dispatch_uid=str(id(self)))
        # Pinned: keys the consumers' request-id bookkeeping (BaseObserver.subscribe) instead
        # of DCRF's "<partition>-<class>-<module>.<function>".
        self._stable_observer_id = event_type

    def database_event(self, instance: Model, action: Action) -> None:
        # DCRF's, through chat.core.db.on_commit: a change written outside a transaction
        # (the post) needs no connection of Django's to learn that it is committed.
        self.get_observer_state(instance).pending_messages = list(self.prepare_messages(instance, action))
        on_commit(functools.partial(self.send_prepared_messages, instance))

    def group_names_for_signal(self, *, instance: Model, **kwargs: Any) -> Iterator[str]:
        yield self.instance_group(instance)

    def prepare_messages(self, instance: Model, action: Action, **kwargs: Any) -> Iterator[dict[str, Any]]:
        # DCRF's, with the groups before the change taken to be the groups now (see __init__).
        groups = set(self.group_names_for_signal(instance=instance))
        before = set() if action is Action.CREATE else groups
        after = set() if action is Action.DELETE else groups
        yield from self.generate_messages(instance, before, after, action, **kwargs)

    def group_names_for_consumer(self, *, consumer: Any, room_id: int, **kwargs: Any) -> Iterator[str]:
        yield self.room_group(room_id)

    def serialize(self, instance: Model, action: Action, **kwargs: Any) -> dict[str, Any]:
        return {"type": self.event_type, "body": self.serialize_body(instance, action), "action": action.value}

    def request_ids(self, consumer: Any, group: str) -> Collection[Any]:
        """The request ids under which a consumer subscribed to a group of this observer.

        The consumer's own set, not a copy: iterate it without awaiting (the fan-out's handlers do).
        """
        return consumer._observer_group_to_request_id[self._stable_observer_id].get(group, ())

    def send_prepared_messages(self, instance: Model) -> None:
        # DCRF's own, with await_after_thread for async_to_sync: the post (or other change)
        # is answered only once its events are published, so a process cannot accept posts
        # faster than it publishes them. The events are ours alone: no deepcopy.
        state = self.get_observer_state(instance)
        messages, state.pending_messages = state.pending_messages, []
        committed_at = time.time()
        for message in messages:
            message["committed_at"] = committed_at
        if messages:
            await_after_thread(self._publish, messages)

    async def _publish(self, messages: list[dict[str, Any]]) -> None:
        layer = get_channel_layer()
        try:
            for message in messages:
                await layer.group_send(message["group"], message)
        except Exception:
            metrics.channel_layer_error("group_send")
            logger.exception("could not fan out a %s event", self.model_cls.__name__)


class MessageObserver(FanoutObserver):
    """FanoutObserver for messages, minus the events of messages deleted with their room."""

    def database_event(self, instance: Model, action: Action) -> None:
        if action is Action.DELETE and getattr(instance, "room_id", None) == _room_being_deleted.get():
            return
        super().database_event(instance, action)
