"""Model observers that fan database changes out to WebSocket subscribers after commit."""

import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Model
from djangochannelsrestframework.observer.model_observer import Action, ModelObserver

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
    """DCRF's model observer, stamping each event with its commit time and surviving layer failures.

    A failed group send must not turn a committed write into an error response:
    the database is the truth, and subscribers recover through after_seq.
    """

    async def __call__(self, message: dict[str, Any], consumer: Any = None, **kwargs: Any) -> Any:
        # DCRF deep-copies every event once per subscribing consumer; handlers here never
        # mutate it, so one event object serves every consumer of the process.
        extra = {key: value for key, value in message.items() if key not in ("body", "type")}
        requests = consumer._observer_group_to_request_id[self._stable_observer_id][message.get("group")]
        return await self.func(
            consumer,
            message["body"],
            observer=self,
            message_type=message["type"],
            subscribing_request_ids=list(requests),
            **extra,
            **kwargs,
        )

    def send_prepared_messages(self, instance: Model) -> None:
        committed_at = time.time()
        for message in self.get_observer_state(instance).pending_messages:
            message["committed_at"] = committed_at
        try:
            super().send_prepared_messages(instance)
        except Exception:
            metrics.channel_layer_error("group_send")
            logger.exception("could not fan out a %s event", self.model_cls.__name__)


class MessageObserver(FanoutObserver):
    """FanoutObserver for messages, minus the events of messages deleted with their room."""

    # Every message observer, for changes that reach a message without writing its row (reactions).
    instances: "weakref.WeakSet[MessageObserver]" = weakref.WeakSet()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        MessageObserver.instances.add(self)

    def database_event(self, instance: Model, action: Action) -> None:
        if action is Action.DELETE and getattr(instance, "room_id", None) == _room_being_deleted.get():
            return
        super().database_event(instance, action)


def message_changed(message: Model) -> None:
    """Send the message's `update` event after commit, as saving it would, although its row did not change.

    A reaction changes what the message's JSON says but not the message row: saving the
    row just to wake the observers would cost a write and a lock for nothing.
    """
    for observer in list(MessageObserver.instances):
        observer.database_event(message, Action.UPDATE)


def fanout_observer(model: type[Model], observer_class: type[FanoutObserver] = FanoutObserver) -> Callable[[Any], FanoutObserver]:
    """Decorator like DCRF's `@model_observer(Model)`, building one of our observer classes."""
    return lambda func: observer_class(func, model_cls=model)
